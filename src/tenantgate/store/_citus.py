"""The schema's shape for Citus, read from the live catalog: what to distribute, what to replicate, what breaks.

Citus shards PostgreSQL across nodes. tenantgate's shape: every table with a ``tenant_id`` is
distributed by it and colocated with ``principals``; every platform table a distributed table
reaches by foreign keys is a reference table (a copy on every node); the rest stays on the
coordinator. :func:`citus_plan` derives that from the catalog and lists every way the schema
breaks Citus' rules for it, as Citus' own source states them (``commands/foreign_constraint.c``,
``commands/policy.c``, ``create_distributed_table.c``): a PRIMARY KEY, UNIQUE or EXCLUDE
constraint or unique index of a distributed table includes ``tenant_id``; a foreign key between
distributed tables pairs ``tenant_id`` with ``tenant_id``, and none that includes it may SET
NULL/SET DEFAULT on delete or SET NULL/SET DEFAULT/CASCADE on update; reference tables point
only at reference tables and coordinator tables at no distributed table; no row-security
policy has a subquery; identity and sequence columns are bigint; no user triggers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from tenantgate.store._schema import SCHEMA

__all__ = ["CITUS_ANCHOR", "CITUS_EXCEPTIONS", "CitusPlan", "citus_plan"]

_SCHEMAS = [SCHEMA, "procrastinate"]
CITUS_ANCHOR = f"{SCHEMA}.principals"  # the colocation group's first table

# Violations a constraint change cannot fix: each backs a lookup made before the tenant is
# known, or a uniqueness across tenants that is a security property. The README's "Sharding
# with Citus" says what to do instead.
CITUS_EXCEPTIONS: Mapping[str, str] = {
    f"{SCHEMA}.api_keys: unique constraint api_keys_prefix_key (prefix) leaves out tenant_id":
        "authentication finds a key by its public prefix before the tenant is known",
    f"{SCHEMA}.webhook_endpoints: unique constraint webhook_endpoints_id_key (id) leaves out tenant_id":
        "an inbound webhook names only its endpoint id; the endpoint decides the tenant",
    f"{SCHEMA}.webhook_endpoints: unique index webhook_endpoints_whatsapp_number (phone_number_id) "
    "leaves out tenant_id":
        "one WhatsApp number routes to exactly one tenant",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    on_delete: str  # pg_constraint.confdeltype: a, r, c, n (SET NULL), d (SET DEFAULT)
    on_update: str

    def __str__(self) -> str:
        return f"{self.table}: foreign key {self.name} ({', '.join(self.columns)}) -> {self.target}"


@dataclass(frozen=True, slots=True)
class CitusPlan:
    """Each table's place, the statements that put it there, and the rules the schema breaks."""

    distributed: frozenset[str]
    reference: frozenset[str]
    local: frozenset[str]
    statements: tuple[str, ...]  # in order; coordinator tables as "-- stays on the coordinator: ..." lines
    violations: tuple[str, ...]  # every one, the documented exceptions included

    @property
    def undocumented(self) -> list[str]:
        """Violations that are no documented exception: the schema needs fixing before Citus."""
        return [v for v in self.violations if v not in CITUS_EXCEPTIONS]


def _rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query, {"schemas": _SCHEMAS}).fetchall()


_TABLES = """
    SELECT n.nspname || '.' || c.relname,
           EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
# Column lists as names in key order; a 0 (an expression in an index) reads "(expression)".
_FOREIGN_KEYS = """
    SELECT k.conname, n.nspname || '.' || c.relname,
           ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(num, i)
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.num ORDER BY u.i),
           tn.nspname || '.' || t.relname,
           ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(num, i)
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.num ORDER BY u.i),
           k.confdeltype, k.confupdtype
      FROM pg_constraint k
      JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_class t ON t.oid = k.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
     WHERE k.contype = 'f' AND n.nspname = ANY(%(schemas)s)
"""
_UNIQUES = """
    SELECT n.nspname || '.' || c.relname, coalesce(k.conname, i.relname),
           CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint'
                          WHEN 'x' THEN 'exclusion constraint' ELSE 'unique index' END,
           ARRAY(SELECT coalesce(a.attname, '(expression)') FROM unnest(x.indkey::int2[]) WITH ORDINALITY u(num, i)
                   LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.num ORDER BY u.i)
      FROM pg_index x
      JOIN pg_class i ON i.oid = x.indexrelid
      JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')
     WHERE n.nspname = ANY(%(schemas)s) AND (x.indisunique OR k.contype = 'x')
"""
_TENANT_COLUMNS = """
    SELECT n.nspname || '.' || c.relname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '' OR a.atthasdef
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND a.attname = 'tenant_id' AND NOT a.attisdropped
"""
_SEQUENCE_COLUMNS = """
    SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE n.nspname = ANY(%(schemas)s) AND NOT a.attisdropped
       AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%')
"""
_POLICIES = """
    SELECT n.nspname || '.' || c.relname, p.polname,
           coalesce(p.polqual::text, '') || coalesce(p.polwithcheck::text, '') LIKE '%%{SUBLINK%%'
      FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s)
"""
_TRIGGERS = """
    SELECT n.nspname || '.' || c.relname, t.tgname
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal
"""


def citus_plan(conn: psycopg.Connection[Any]) -> CitusPlan:
    """The Citus shape of the schema ``conn`` sees (any role can read the catalog)."""
    tables = {str(name): bool(tenant) for name, tenant in _rows(conn, _TABLES)}
    fks = [
        _ForeignKey(str(name), str(table), tuple(cols), str(target), tuple(tcols), str(on_delete), str(on_update))
        for name, table, cols, target, tcols, on_delete, on_update in _rows(conn, _FOREIGN_KEYS)
    ]
    distributed = {t for t, tenant in tables.items() if tenant and t.startswith(f"{SCHEMA}.")}
    reference: set[str] = set()
    while more := {f.target for f in fks if f.table in distributed | reference and f.target not in distributed}:
        if more <= reference:
            break
        reference |= more
    local = set(tables) - distributed - reference
    statements = [f"SELECT create_reference_table('{t}');" for t in _topological(reference, fks)]
    statements.append(f"SELECT create_distributed_table('{CITUS_ANCHOR}', 'tenant_id');")
    statements += [
        f"SELECT create_distributed_table('{t}', 'tenant_id', colocate_with => '{CITUS_ANCHOR}');"
        for t in _topological(distributed - {CITUS_ANCHOR}, fks)
    ]
    statements += [f"-- stays on the coordinator: {t}" for t in sorted(local)]
    return CitusPlan(
        distributed=frozenset(distributed),
        reference=frozenset(reference),
        local=frozenset(local),
        statements=tuple(statements),
        violations=tuple(sorted(_violations(conn, fks, distributed, reference, local))),
    )


def _violations(
    conn: psycopg.Connection[Any], fks: list[_ForeignKey], distributed: set[str], reference: set[str], local: set[str]
) -> Iterable[str]:
    citus = distributed | reference
    for table, name, kind, cols in _rows(conn, _UNIQUES):
        if table in distributed and "tenant_id" not in cols:
            yield f"{table}: {kind} {name} ({', '.join(cols)}) leaves out tenant_id"
    for fk in fks:
        paired = ("tenant_id", "tenant_id") in zip(fk.columns, fk.target_columns, strict=True)
        if fk.table in distributed and fk.target in distributed and not paired:
            yield f"{fk} does not pair tenant_id with tenant_id"
        if fk.table in reference and fk.target in distributed:
            yield f"{fk}: a reference table may point only at reference tables"
        if fk.table in local and fk.target in distributed:
            yield f"{fk}: a coordinator table may not point at a distributed table"
        if fk.table in distributed and "tenant_id" in fk.columns and fk.on_delete in ("n", "d"):
            yield f"{fk}: ON DELETE SET NULL/SET DEFAULT on the distribution column"
        if fk.table in distributed and "tenant_id" in fk.columns and fk.on_update in ("n", "d", "c"):
            yield f"{fk}: ON UPDATE SET NULL/SET DEFAULT/CASCADE on the distribution column"
    for table, typ, defaulted in _rows(conn, _TENANT_COLUMNS):
        if table in distributed and (typ != "uuid" or defaulted):
            yield f"{table}: tenant_id must be a plain uuid column to colocate (it is {typ}, or has a default)"
    for table, column, typ in _rows(conn, _SEQUENCE_COLUMNS):
        if table in citus and typ != "bigint":
            yield f"{table}: {column} is an identity/sequence column of type {typ}; Citus needs bigint"
    for table, name, has_subquery in _rows(conn, _POLICIES):
        if table in citus and has_subquery:
            yield f"{table}: policy {name} has a subquery, which Citus refuses on distributed tables"
    for table, name in _rows(conn, _TRIGGERS):
        if table in citus:
            yield f"{table}: trigger {name} (Citus runs none on distributed tables by default)"


def _topological(tables: Iterable[str], fks: list[_ForeignKey]) -> list[str]:
    """``tables``, each after those it points at (Citus needs the target first); by name otherwise."""
    pending = set(tables)
    ordered: list[str] = []
    while pending:
        ready = sorted(t for t in pending if not {f.target for f in fks if f.table == t and f.target != t} & pending)
        if not ready:
            raise ValueError(f"a foreign key cycle among {sorted(pending)}")
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered
