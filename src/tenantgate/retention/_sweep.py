"""The SQL of one retention batch: find aged rows of a tenant in a table, delete them by ctid.

Tables come from our own list or the catalog (never from input); identifiers are quoted by
the dialect. Every statement names the tenant explicitly and runs as the admin role, in one
transaction per batch, so a batch is all or nothing and locks only its own rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.store import tables

SCHEMA = tables.SCHEMA

__all__ = ["Aged", "catalog_tables", "soft_deleted_tables"]

_SOFT_DELETED = sa.text(
    """
    SELECT c.table_name
      FROM information_schema.columns c
      JOIN information_schema.tables t
        ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
     WHERE c.table_schema = :schema AND c.column_name = 'deleted_at'
       AND EXISTS (SELECT 1 FROM information_schema.columns k
                    WHERE k.table_schema = c.table_schema AND k.table_name = c.table_name
                      AND k.column_name = 'tenant_id')
     ORDER BY c.table_name
    """
)
_TABLES = sa.text(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema AND table_type = 'BASE TABLE'"
)


async def soft_deleted_tables(conn: AsyncConnection) -> list[str]:
    """Every tenant table with a ``deleted_at`` column, from the catalog (so later tables are covered)."""
    return [str(row[0]) for row in await conn.execute(_SOFT_DELETED, {"schema": SCHEMA})]


async def catalog_tables(conn: AsyncConnection) -> set[str]:
    return {str(row[0]) for row in await conn.execute(_TABLES, {"schema": SCHEMA})}


def _q(conn: AsyncConnection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


@dataclass(frozen=True, slots=True)
class Aged:
    """Rows of ``table`` whose ``column`` is before a cutoff (plus ``extra``, a fixed SQL condition)."""

    table: str
    column: str
    extra: str = ""

    def _where(self, conn: AsyncConnection) -> str:
        extra = f" AND {self.extra}" if self.extra else ""
        return f"tenant_id = :tenant AND {_q(conn, self.column)} < :before{extra}"

    def _from(self, conn: AsyncConnection) -> str:
        return f"{_q(conn, SCHEMA)}.{_q(conn, self.table)}"

    async def preview(
        self, conn: AsyncConnection, tenant_id: uuid.UUID, before: datetime
    ) -> tuple[int, datetime | None]:
        """How many rows are aged, and the oldest one's time."""
        col = _q(conn, self.column)
        sql = f"SELECT count(*), min({col}) FROM {self._from(conn)} WHERE {self._where(conn)}"  # noqa: S608 - quoted identifiers
        row = (await conn.execute(sa.text(sql), {"tenant": tenant_id, "before": before})).one()
        return int(row[0]), row[1]

    async def delete_batch(self, conn: AsyncConnection, tenant_id: uuid.UUID, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` aged rows, oldest first, in one statement (rows others hold are skipped)."""
        sql = (
            f"DELETE FROM {self._from(conn)} WHERE tenant_id = :tenant AND ctid = ANY(ARRAY("  # noqa: S608 - quoted identifiers
            f"SELECT ctid FROM {self._from(conn)} WHERE {self._where(conn)}"
            f" ORDER BY {_q(conn, self.column)} LIMIT :limit FOR UPDATE SKIP LOCKED))"
        )
        result = await conn.execute(sa.text(sql), {"tenant": tenant_id, "before": before, "limit": limit})
        return int(result.rowcount)

    async def lock_ids(
        self, conn: AsyncConnection, tenant_id: uuid.UUID, before: datetime, limit: int
    ) -> list[uuid.UUID]:
        """Lock up to ``limit`` aged rows, oldest first, and return their ids (to delete their children first)."""
        sql = (
            f"SELECT id FROM {self._from(conn)} WHERE {self._where(conn)}"  # noqa: S608 - quoted identifiers
            f" ORDER BY {_q(conn, self.column)} LIMIT :limit FOR UPDATE SKIP LOCKED"
        )
        rows = await conn.execute(sa.text(sql), {"tenant": tenant_id, "before": before, "limit": limit})
        return [r[0] for r in rows]

    async def delete_ids(self, conn: AsyncConnection, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
        sql = f"DELETE FROM {self._from(conn)} WHERE tenant_id = :tenant AND id = ANY(CAST(:ids AS uuid[]))"  # noqa: S608 - quoted identifiers
        return int((await conn.execute(sa.text(sql), {"tenant": tenant_id, "ids": ids})).rowcount)


async def delete_children(
    conn: AsyncConnection, table: str, column: str, tenant_id: uuid.UUID, parent_ids: list[uuid.UUID]
) -> int:
    """Delete the version rows of these parents (they reference the parents, so they go first)."""
    sql = (
        f"DELETE FROM {_q(conn, SCHEMA)}.{_q(conn, table)}"  # noqa: S608 - quoted identifiers
        f" WHERE tenant_id = :tenant AND {_q(conn, column)} = ANY(CAST(:ids AS uuid[]))"
    )
    result = await conn.execute(sa.text(sql), {"tenant": tenant_id, "ids": parent_ids})
    return int(result.rowcount)


async def count_children(
    conn: AsyncConnection, table: str, column: str, parent: Aged, tenant_id: uuid.UUID, before: datetime
) -> int:
    """How many version rows belong to the aged parents (for a dry run)."""
    sql = (
        f"SELECT count(*) FROM {_q(conn, SCHEMA)}.{_q(conn, table)}"  # noqa: S608 - quoted identifiers
        f" WHERE tenant_id = :tenant AND {_q(conn, column)} IN"
        f" (SELECT id FROM {parent._from(conn)} WHERE {parent._where(conn)})"
    )
    return int((await conn.execute(sa.text(sql), {"tenant": tenant_id, "before": before})).scalar_one())
