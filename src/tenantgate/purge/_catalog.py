"""What a purge deletes, found from the live catalog rather than from a list in code.

Every table in the application schema with a ``tenant_id`` column is tenant-owned (the RLS
catalog test holds every such table to that). A purge reads them from ``pg_catalog`` when
it runs, so a table added by a later migration is purged without anyone remembering to add
it here. Tables are ordered by their foreign keys (children first), so a batch never trips
over a reference that the next table would have removed.

Stated exceptions, kept on purpose:

- ``audit_events``: the hash chain stays; payloads are erased (``payload`` null,
  ``erased_at`` set, digest kept), so ``tenantgate audit verify`` still passes;
- ``audit_heads``: the chain head that verification compares the last event with;
- ``tenant_purges``: the purge record, the evidence that the purge happened;
- the ``tenants`` row itself (it has no ``tenant_id`` column): a tombstone, because the
  foreign keys above point at it; its name and display name are erased.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.store import tables

SCHEMA = tables.SCHEMA

__all__ = ["KEPT", "QUEUE_JOBS", "TenantTable", "delete_batch", "delete_queue_jobs", "in_queue_schema", "tenant_tables"]

KEPT = frozenset({"audit_events", "audit_heads", "tenant_purges"})
QUEUE_JOBS = "procrastinate.procrastinate_jobs"

_TABLES = sa.text(
    """
    SELECT c.oid, c.relname
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
     ORDER BY c.relname
    """
)
_REFERENCES = sa.text(
    """
    SELECT con.conrelid, con.confrelid
      FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_namespace n ON n.oid = con.connamespace
     WHERE n.nspname = :schema AND con.contype = 'f' AND con.conrelid <> con.confrelid
    """
)


@dataclass(frozen=True, slots=True)
class TenantTable:
    """A table with a ``tenant_id`` column, and whether a purge deletes its rows."""

    name: str
    kept: bool


async def tenant_tables(conn: AsyncConnection) -> list[TenantTable]:
    """Every tenant-owned table of the schema, children before the parents they reference."""
    names = {row.oid: row.relname for row in await conn.execute(_TABLES, {"schema": SCHEMA})}
    # parent -> children that reference it: a parent waits until all its children are done.
    waiting_on: dict[int, set[int]] = {oid: set() for oid in names}
    for child, parent in await conn.execute(_REFERENCES, {"schema": SCHEMA}):
        if child in names and parent in names:
            waiting_on[parent].add(child)
    ordered: list[int] = []
    remaining = dict(waiting_on)
    while remaining:
        ready = sorted((oid for oid, children in remaining.items() if not children), key=lambda o: names[o])
        if not ready:  # a reference cycle: name order, and the database refuses if it cannot be done
            ready = sorted(remaining, key=lambda o: names[o])
        for oid in ready:
            ordered.append(oid)
            del remaining[oid]
        for children in remaining.values():
            children.difference_update(ready)
    return [TenantTable(names[oid], names[oid] in KEPT) for oid in ordered]


def _quote(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


async def delete_batch(conn: AsyncConnection, table: str, tenant_id: uuid.UUID, limit: int) -> int:
    """Delete up to ``limit`` rows of ``tenant_id`` from ``table`` (one set-based statement); how many went.

    The identifiers come from the catalog and are quoted; the tenant is a bound parameter and
    named explicitly, so this touches one tenant's rows even on the BYPASSRLS connection.
    """
    qualified = f"{_quote(conn, SCHEMA)}.{_quote(conn, table)}"
    statement = sa.text(
        f"DELETE FROM {qualified} WHERE ctid = ANY(ARRAY("  # noqa: S608 - catalog identifiers, quoted
        f"SELECT ctid FROM {qualified} WHERE tenant_id = :tenant LIMIT :limit))"
    )
    result = await conn.execute(statement, {"tenant": tenant_id, "limit": limit})
    return int(result.rowcount)


_QUEUE_DELETE = sa.text(
    "DELETE FROM procrastinate.procrastinate_jobs WHERE id IN (SELECT id FROM procrastinate.procrastinate_jobs"
    " WHERE args->>'tenant_id' = :tenant AND status <> 'doing' LIMIT :limit)"
)


async def in_queue_schema(conn: AsyncConnection, statement: sa.TextClause, params: dict[str, object]) -> int:
    """Run a statement on procrastinate's tables: its triggers name their tables unqualified."""
    await conn.execute(sa.text("SET LOCAL search_path TO procrastinate"))
    try:
        return int((await conn.execute(statement, params)).rowcount)
    finally:
        await conn.execute(sa.text("SET LOCAL search_path TO DEFAULT"))


async def delete_queue_jobs(conn: AsyncConnection, tenant_id: uuid.UUID, limit: int) -> int:
    """Delete up to ``limit`` of the queue's job rows whose arguments name the tenant (not one being run)."""
    return await in_queue_schema(conn, _QUEUE_DELETE, {"tenant": str(tenant_id), "limit": limit})
