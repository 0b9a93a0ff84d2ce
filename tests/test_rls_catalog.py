"""The catalog itself: every tenant-owned table is protected, and nothing routes around RLS.

These tests read the live schema, so a table added by a later migration without
``make_tenant_owned`` fails here.
"""

from __future__ import annotations

import psycopg

from tests.conftest import DatabaseFixture

SCHEMA = "tenantgate"
CURRENT_TENANT = "NULLIF(current_setting('tenantgate.tenant_id'::text, true), ''::text))::uuid"


def _rows(test_db: DatabaseFixture, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(test_db.superuser) as conn:
        return conn.execute(query, {"schema": SCHEMA}).fetchall()


_UNPROTECTED = """
    SELECT c.relname
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')
       AND EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
       AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (
                SELECT 1 FROM pg_policy p
                 WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation' AND p.polcmd = '*'
                   AND pg_get_expr(p.polqual, p.polrelid) LIKE '%%tenant_id%%'
                   AND p.polwithcheck IS NOT NULL))
"""


def _unprotected(conn: psycopg.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute(_UNPROTECTED, {"schema": SCHEMA})]


def test_every_table_with_tenant_id_has_forced_rls_and_the_tenant_policy(test_db: DatabaseFixture) -> None:
    with psycopg.connect(test_db.superuser) as conn:
        assert _unprotected(conn) == []
        tenant_tables = conn.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = %s AND column_name = 'tenant_id'",
            [SCHEMA],
        ).fetchone()
    assert tenant_tables is not None
    assert tenant_tables[0] >= 3  # principals, memberships, api_keys at least


def test_the_catalog_check_catches_a_table_added_without_the_helper(test_db: DatabaseFixture) -> None:
    with psycopg.connect(test_db.urls.owner) as conn:
        conn.execute("CREATE TABLE tenantgate.forgotten (tenant_id uuid NOT NULL, note text)")
        conn.execute("CREATE TABLE tenantgate.half_done (tenant_id uuid NOT NULL)")
        conn.execute("ALTER TABLE tenantgate.half_done ENABLE ROW LEVEL SECURITY")  # enabled, not forced
        assert sorted(_unprotected(conn)) == ["forgotten", "half_done"]
        conn.rollback()


def test_tenant_policies_read_the_transaction_setting(test_db: DatabaseFixture) -> None:
    policies = _rows(
        test_db,
        """
        SELECT c.relname, pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
          FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(schema)s AND p.polname = 'tenant_isolation'
        """,
    )
    for table, using, check in policies:
        assert CURRENT_TENANT in str(using), table
        assert CURRENT_TENANT in str(check), table


def test_the_tenants_table_is_protected_by_its_id(test_db: DatabaseFixture) -> None:
    [(enabled, forced)] = _rows(
        test_db,
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %(schema)s AND c.relname = 'tenants'",
    )
    assert (enabled, forced) == (True, True)


def test_no_permissive_policy_other_than_the_known_ones(test_db: DatabaseFixture) -> None:
    # Permissive policies are OR-ed: any extra one widens access, so each must be reviewed
    # here. Restrictive ones are AND-ed: they can only narrow it.
    policies = {
        (str(table), str(name), str(cmd))
        for table, name, cmd in _rows(
            test_db,
            """
            SELECT c.relname, p.polname, p.polcmd FROM pg_policy p
              JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = %(schema)s AND p.polname <> 'tenant_isolation' AND p.polpermissive
            """,
        )
    }
    # webhook_endpoint_lookup: the webhook edge reads the one endpoint its URL names (SELECT only).
    # console_login_lookup: console sign-in reads the one tenant row whose name the form gave (SELECT only).
    assert policies == {
        ("api_keys", "auth_prefix_lookup", "r"),
        ("webhook_endpoints", "webhook_endpoint_lookup", "r"),
        ("tenants", "console_login_lookup", "r"),
    }


def test_no_view_without_security_invoker(test_db: DatabaseFixture) -> None:
    views = _rows(
        test_db,
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = %(schema)s AND c.relkind IN ('v', 'm')
           AND NOT coalesce('security_invoker=true' = ANY(c.reloptions)
                            OR 'security_invoker=on' = ANY(c.reloptions), false)
        """,
    )
    assert views == []


def test_no_security_definer_function(test_db: DatabaseFixture) -> None:
    functions = _rows(
        test_db,
        "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %(schema)s AND p.prosecdef",
    )
    assert functions == []


def test_app_role_owns_nothing_and_cannot_create_in_the_schema(test_db: DatabaseFixture) -> None:
    with psycopg.connect(test_db.urls.app) as conn:
        [(can_create, owned)] = conn.execute(
            "SELECT has_schema_privilege(%(schema)s, 'CREATE'),"
            " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "   WHERE n.nspname = %(schema)s AND pg_get_userbyid(c.relowner) = current_user)",
            {"schema": SCHEMA},
        ).fetchall()
    assert (can_create, owned) == (False, 0)
