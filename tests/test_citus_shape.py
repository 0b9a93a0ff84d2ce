"""The migrated schema against Citus' rules for sharding by ``tenant_id``.

Citus shards a PostgreSQL database across nodes. The shape the README's "Sharding with
Citus" guide describes is derived here from the live catalog, so a later migration cannot
silently break it:

- every table with a ``tenant_id`` is **distributed** by it, all colocated (a tenant's rows
  of every table live on one node, and a query naming ``tenant_id`` goes to one shard);
- every platform table a tenant table points at (transitively) is a **reference** table
  (one copy on every node);
- the rest (platform tables, the job queue, alembic's version) stays **on the coordinator**.

The rules checked are Citus' own (its source: ``commands/foreign_constraint.c``,
``commands/policy.c``, ``create_distributed_table.c``, and the identity-column tests):
PRIMARY KEY, UNIQUE and EXCLUDE constraints and unique indexes of a distributed table include
the distribution column; a foreign key between distributed tables includes it at the same
position on both sides, and none that includes it may SET NULL/SET DEFAULT on delete or
SET NULL/SET DEFAULT/CASCADE on update; distributed tables point only at colocated
distributed tables or reference tables, reference tables only at reference tables, and
nothing on the coordinator at a distributed table; a row-security policy has no subquery;
identity and sequence columns are bigint; no user triggers. Violations that cannot be fixed
safely are the README's documented exceptions, listed in ``EXCEPTIONS``: a new one fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import DatabaseFixture

SCHEMAS = ["tenantgate", "procrastinate"]
ANCHOR = "tenantgate.principals"  # the colocation group's first table
README = Path(__file__).resolve().parents[1] / "README.md"

# Violations that a constraint change cannot fix: each backs a lookup that runs before the
# tenant is known, or a uniqueness across tenants that is a security property. The README
# says what to do instead on Citus.
EXCEPTIONS = {
    "tenantgate.api_keys: unique constraint api_keys_prefix_key (prefix) leaves out tenant_id":
        "authentication finds a key by its public prefix before the tenant is known",
    "tenantgate.webhook_endpoints: unique constraint webhook_endpoints_id_key (id) leaves out tenant_id":
        "an inbound webhook names only its endpoint id; the endpoint decides the tenant",
    "tenantgate.webhook_endpoints: unique index webhook_endpoints_whatsapp_number (phone_number_id) "
    "leaves out tenant_id":
        "one WhatsApp number routes to exactly one tenant",
}  # fmt: skip
# Every setting a row-security policy reads; on Citus each must be set with SET LOCAL.
POLICY_SETTINGS = {
    "tenantgate.tenant_id",
    "tenantgate.auth_key_prefix",
    "tenantgate.webhook_endpoint",
    "tenantgate.auth_tenant_name",
}
# SQL functions that switch the tenant setting themselves (audit group commit, one chain at a time).
SETTING_FUNCTIONS = {"tenantgate.audit_lock_heads", "tenantgate.audit_write"}


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    on_delete: str  # pg_constraint.confdeltype: a, r, c, n (SET NULL), d (SET DEFAULT)
    on_update: str


@dataclass(frozen=True)
class Shape:
    tables: dict[str, bool]  # qualified name -> has tenant_id
    foreign_keys: list[ForeignKey]

    @property
    def distributed(self) -> set[str]:
        return {t for t, tenant in self.tables.items() if tenant and t.startswith("tenantgate.")}

    @property
    def reference(self) -> set[str]:
        """Platform tables a distributed table reaches by foreign keys: they must be on every node."""
        found: set[str] = set()
        sources = self.distributed
        while True:
            more = {
                fk.target for fk in self.foreign_keys
                if fk.table in sources | found and fk.target not in self.distributed and fk.target != fk.table
            } - found  # fmt: skip
            if not more:
                return found
            found |= more

    @property
    def local(self) -> set[str]:
        return set(self.tables) - self.distributed - self.reference


def _q(conn: psycopg.Connection, query: str) -> list[tuple[object, ...]]:
    return conn.execute(query, {"schemas": SCHEMAS}).fetchall()


def _columns(attnums: str) -> str:
    # An int2vector/int2[] of attribute numbers -> their names, in order (0: an expression).
    return f"""ARRAY(SELECT coalesce(a.attname, '(expression)') FROM unnest({attnums}) WITH ORDINALITY k(n, i)
                     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n ORDER BY k.i)"""


def read_shape(conn: psycopg.Connection) -> Shape:
    tables = {
        str(name): bool(tenant)
        for name, tenant in _q(
            conn,
            """
            SELECT n.nspname || '.' || c.relname,
                   EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            """,
        )
    }
    rows = _q(
        conn,
        f"""
        SELECT k.conname, n.nspname || '.' || c.relname, {_columns("k.conkey")},
               tn.nspname || '.' || t.relname,
               ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY f(n, i)
                       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = f.n ORDER BY f.i),
               k.confdeltype, k.confupdtype
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_class t ON t.oid = k.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
         WHERE k.contype = 'f' AND n.nspname = ANY(%(schemas)s)
        """,
    )
    fks = [
        ForeignKey(str(name), str(table), tuple(cols), str(target), tuple(tcols), str(on_delete), str(on_update))
        for name, table, cols, target, tcols, on_delete, on_update in rows
    ]
    return Shape(tables, fks)


def violations(conn: psycopg.Connection, shape: Shape) -> list[str]:
    """Every way the schema breaks Citus' rules for the classification in ``shape``, one line each."""
    distributed, reference, local = shape.distributed, shape.reference, shape.local
    citus = distributed | reference
    found: list[str] = []
    uniques = _q(
        conn,
        f"""
        SELECT n.nspname || '.' || c.relname, coalesce(k.conname, i.relname),
               CASE k.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint'
                              WHEN 'x' THEN 'exclusion constraint' ELSE 'unique index' END,
               {_columns("x.indkey::int2[]")}
          FROM pg_index x
          JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')
         WHERE n.nspname = ANY(%(schemas)s) AND (x.indisunique OR k.contype = 'x')
        """,
    )
    for table, name, kind, cols in uniques:
        if table in distributed and "tenant_id" not in cols:
            found.append(f"{table}: {kind} {name} ({', '.join(cols)}) leaves out tenant_id")
    for fk in shape.foreign_keys:
        where = f"{fk.table}: foreign key {fk.name} ({', '.join(fk.columns)}) -> {fk.target}"
        paired = ("tenant_id", "tenant_id") in zip(fk.columns, fk.target_columns, strict=True)
        if fk.table in distributed and fk.target in distributed and not paired:
            found.append(f"{where} does not pair tenant_id with tenant_id")
        if fk.table in reference and fk.target in distributed:
            found.append(f"{where}: a reference table may point only at reference tables")
        if fk.table in local and fk.target in distributed:
            found.append(f"{where}: a coordinator table may not point at a distributed table")
        if fk.table in distributed and "tenant_id" in fk.columns:
            if fk.on_delete in ("n", "d"):
                found.append(f"{where}: ON DELETE SET NULL/SET DEFAULT on the distribution column")
            if fk.on_update in ("n", "d", "c"):
                found.append(f"{where}: ON UPDATE SET NULL/SET DEFAULT/CASCADE on the distribution column")
    for table, typ, generated, has_default in _q(
        conn,
        """
        SELECT n.nspname || '.' || c.relname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', a.atthasdef
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p')
           AND a.attname = 'tenant_id' AND NOT a.attisdropped
        """,
    ):
        if table in distributed and (typ != "uuid" or generated or has_default):
            found.append(f"{table}: tenant_id must be a plain uuid column to colocate (it is {typ}, or has a default)")
    for table, column, typ in _q(
        conn,
        """
        SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = ANY(%(schemas)s) AND NOT a.attisdropped
           AND (a.attidentity <> '' OR pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%')
        """,
    ):
        if table in citus and typ != "bigint":
            found.append(f"{table}: {column} is an identity/sequence column of type {typ}; Citus needs bigint")
    for table, name, has_subquery in _q(
        conn,
        """
        SELECT n.nspname || '.' || c.relname, p.polname,
               coalesce(p.polqual::text, '') || coalesce(p.polwithcheck::text, '') LIKE '%%{SUBLINK%%'
          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)
        """,
    ):
        if table in citus and has_subquery:
            found.append(f"{table}: policy {name} has a subquery, which Citus refuses on distributed tables")
    for table, name in _q(
        conn,
        """
        SELECT n.nspname || '.' || c.relname, t.tgname
          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal
        """,
    ):
        if table in citus:
            found.append(f"{table}: trigger {name} (Citus runs none on distributed tables by default)")
    return sorted(found)


def _topological(tables: Iterable[str], fks: list[ForeignKey]) -> list[str]:
    """``tables`` with every table after those it points at (Citus needs the target first); by name otherwise."""
    pending = set(tables)
    ordered: list[str] = []
    while pending:
        ready = sorted(t for t in pending if not {f.target for f in fks if f.table == t and f.target != t} & pending)
        assert ready, f"a foreign key cycle among {sorted(pending)}"
        ordered.append(ready[0])
        pending.remove(ready[0])
    return ordered


def plan(shape: Shape) -> list[str]:
    """The statements that turn a migrated single-node database into the Citus shape, in order."""
    lines = [f"SELECT create_reference_table('{t}');" for t in _topological(shape.reference, shape.foreign_keys)]
    lines.append(f"SELECT create_distributed_table('{ANCHOR}', 'tenant_id');")
    rest = _topological(shape.distributed - {ANCHOR}, shape.foreign_keys)
    lines += [f"SELECT create_distributed_table('{t}', 'tenant_id', colocate_with => '{ANCHOR}');" for t in rest]
    lines += [f"-- stays on the coordinator: {t}" for t in sorted(shape.local)]
    return lines


def _readme_plan() -> tuple[list[str], str]:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- citus-plan -->\s*```sql\n(.*?)```\s*<!-- /citus-plan -->", text, re.S)
    assert found, "README.md has no <!-- citus-plan --> block"
    section = text[text.index("### Sharding with Citus") :]
    return [line for line in found.group(1).splitlines() if line.strip()], section


@pytest.fixture
def conn(test_db: DatabaseFixture) -> Iterable[psycopg.Connection]:
    with psycopg.connect(test_db.superuser) as connection:
        yield connection
        connection.rollback()  # the probes below create tables: none survives


def test_every_table_is_classified_once(conn: psycopg.Connection) -> None:
    shape = read_shape(conn)
    kinds = (shape.distributed, shape.reference, shape.local)
    assert sum(len(k) for k in kinds) == len(shape.tables)
    assert set().union(*kinds) == set(shape.tables)
    assert ANCHOR in shape.distributed
    # The tenants table is no tenant table (it has no tenant_id) and every tenant table points at it.
    assert {"tenantgate.tenants", "tenantgate.quota_plans"} <= shape.reference
    assert "procrastinate.procrastinate_jobs" in shape.local
    assert not {f.target for f in shape.foreign_keys if f.table == ANCHOR} & shape.distributed
    print("\nCitus plan:\n" + "\n".join(plan(shape)))


def test_the_only_violations_are_the_documented_exceptions(conn: psycopg.Connection) -> None:
    found = violations(conn, read_shape(conn))
    print("\nCitus rule violations:\n" + "\n".join(f"  - {v}" for v in found))
    new = [v for v in found if v not in EXCEPTIONS]
    fixed = [v for v in EXCEPTIONS if v not in found]
    assert not new, "New violations of Citus' rules (fix them, or document an exception):\n" + "\n".join(new)
    assert not fixed, "Exceptions no longer found: remove them here and in the README:\n" + "\n".join(fixed)


def test_the_checker_reports_each_kind_of_violation(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE tenantgate.probe_parent (tenant_id uuid NOT NULL, id uuid NOT NULL, code text,
                                              PRIMARY KEY (tenant_id, id), UNIQUE (id));
        CREATE TABLE tenantgate.probe_child (
            tenant_id uuid REFERENCES tenantgate.tenants (id) ON DELETE SET NULL,
            n integer GENERATED BY DEFAULT AS IDENTITY,
            parent_id uuid REFERENCES tenantgate.probe_parent (id));
        CREATE UNIQUE INDEX probe_child_n ON tenantgate.probe_child (n) WHERE n > 0;
        CREATE TABLE tenantgate.probe_platform (parent_id uuid REFERENCES tenantgate.probe_parent (id));
        ALTER TABLE tenantgate.probe_parent ENABLE ROW LEVEL SECURITY;
        CREATE POLICY probe ON tenantgate.probe_parent
            USING (tenant_id IN (SELECT id FROM tenantgate.tenants));
        CREATE FUNCTION tenantgate.probe_trigger() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
        CREATE TRIGGER probe BEFORE INSERT ON tenantgate.probe_parent
            FOR EACH ROW EXECUTE FUNCTION tenantgate.probe_trigger();
        """
    )
    shape = read_shape(conn)
    assert {"tenantgate.probe_parent", "tenantgate.probe_child"} <= shape.distributed
    assert "tenantgate.probe_platform" in shape.local
    found = "\n".join(v for v in violations(conn, shape) if "probe" in v)
    expected = [
        "tenantgate.probe_parent: unique constraint probe_parent_id_key (id) leaves out tenant_id",
        "tenantgate.probe_child: unique index probe_child_n (n) leaves out tenant_id",
        "probe_child_parent_id_fkey (parent_id) -> tenantgate.probe_parent does not pair tenant_id",
        "probe_child_tenant_id_fkey (tenant_id) -> tenantgate.tenants: ON DELETE SET NULL",
        "tenantgate.probe_child: n is an identity/sequence column of type integer; Citus needs bigint",
        "tenantgate.probe_platform: foreign key probe_platform_parent_id_fkey (parent_id) -> "
        "tenantgate.probe_parent: a coordinator table may not point at a distributed table",
        "tenantgate.probe_parent: policy probe has a subquery",
        "tenantgate.probe_parent: trigger probe",
    ]
    for item in expected:
        assert item in found, f"{item!r} not reported; reported:\n{found}"


def test_the_readme_plan_is_the_catalog_plan(conn: psycopg.Connection) -> None:
    shape = read_shape(conn)
    documented, section = _readme_plan()
    assert documented == plan(shape), "README's Citus plan differs from the catalog's:\n" + "\n".join(plan(shape))
    for violation in EXCEPTIONS:
        table, constraint = violation.split(": ")[0], violation.split(" ")[3]
        assert f"`{constraint}`" in section, violation
        assert f"`{table.split('.')[1]}`" in section, violation


def test_policies_read_only_the_settings_the_guide_names(conn: psycopg.Connection) -> None:
    texts = _q(
        conn,
        """
        SELECT coalesce(pg_get_expr(p.polqual, p.polrelid), '') || ' '
               || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY(%(schemas)s)
        """,
    )
    read = {m for (text,) in texts for m in re.findall(r"current_setting\('([^']+)'", str(text))}
    assert read == POLICY_SETTINGS
    setters = {
        f"{schema}.{name}"
        for schema, name in _q(
            conn,
            "SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = ANY(%(schemas)s) AND p.prosrc LIKE '%%set_config(''tenantgate.%%'",
        )
    }
    assert setters == SETTING_FUNCTIONS
    _, section = _readme_plan()
    for name in POLICY_SETTINGS | {s.split(".")[1] for s in SETTING_FUNCTIONS}:
        assert name in section, name
