"""Row-level security as the app role sees it: the backstop holds even when a query forgets its filter."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tenantgate.store import TENANT_SETTING
from tests.conftest import DatabaseFixture, TenantFixture


def _as_app(test_db: DatabaseFixture) -> psycopg.Connection:
    return psycopg.connect(test_db.urls.app)


def _enter(conn: psycopg.Connection, tenant_id: uuid.UUID) -> None:
    conn.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, str(tenant_id)])


async def test_select_without_where_sees_only_the_current_tenant(
    test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    with _as_app(test_db) as conn:
        _enter(conn, tenant_a.id)
        tenants = {r[0] for r in conn.execute("SELECT tenant_id FROM tenantgate.principals")}
        keys = {r[0] for r in conn.execute("SELECT tenant_id FROM tenantgate.api_keys")}
        visible_tenants = [r[0] for r in conn.execute("SELECT id FROM tenantgate.tenants")]
    assert tenants == {tenant_a.id}
    assert keys == {tenant_a.id}
    assert visible_tenants == [tenant_a.id]


async def test_no_tenant_set_means_zero_rows(test_db: DatabaseFixture, tenant_a: TenantFixture) -> None:
    with _as_app(test_db) as conn:
        for table in ("tenants", "principals", "memberships", "api_keys"):
            assert conn.execute(f"SELECT count(*) FROM tenantgate.{table}").fetchone() == (0,)


async def test_a_spent_setting_on_a_pooled_connection_means_zero_rows(
    test_db: DatabaseFixture, tenant_a: TenantFixture
) -> None:
    # After a transaction-local set_config commits, the setting reads back as '' in that
    # session: the policy must treat it as "no tenant", not raise and not match.
    with _as_app(test_db) as conn:
        _enter(conn, tenant_a.id)
        assert conn.execute("SELECT count(*) FROM tenantgate.principals").fetchone() == (1,)
        conn.commit()
        assert conn.execute("SELECT current_setting(%s, true)", [TENANT_SETTING]).fetchone() == ("",)
        assert conn.execute("SELECT count(*) FROM tenantgate.principals").fetchone() == (0,)


async def test_insert_for_another_tenant_is_refused(
    test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    with _as_app(test_db) as conn:
        _enter(conn, tenant_a.id)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO tenantgate.principals (tenant_id, id, kind, name) VALUES (%s, %s, 'user', 'intruder')",
                [tenant_b.id, uuid.uuid4()],
            )
    with psycopg.connect(test_db.urls.admin) as admin:
        names = [
            r[0] for r in admin.execute("SELECT name FROM tenantgate.principals WHERE tenant_id = %s", [tenant_b.id])
        ]
    assert names == ["owner"]


async def test_update_cannot_move_a_row_to_another_tenant(
    test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    with _as_app(test_db) as conn:
        _enter(conn, tenant_a.id)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE tenantgate.principals SET tenant_id = %s", [tenant_b.id])


async def test_update_and_delete_without_where_touch_only_the_current_tenant(
    test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    with _as_app(test_db) as conn:
        _enter(conn, tenant_a.id)
        updated = conn.execute("UPDATE tenantgate.api_keys SET name = 'renamed'").rowcount
        conn.rollback()
    assert updated == 1
    with psycopg.connect(test_db.urls.admin) as admin:
        row = admin.execute("SELECT name FROM tenantgate.api_keys WHERE tenant_id = %s", [tenant_b.id]).fetchone()
    assert row == ("",)


async def test_app_role_cannot_write_tenants_or_read_platform_keys(test_db: DatabaseFixture) -> None:
    with _as_app(test_db) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO tenantgate.tenants (id, name, display_name) VALUES (gen_random_uuid(), 'x', 'x')")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM tenantgate.platform_keys")


async def test_app_role_cannot_switch_off_rls_or_become_another_role(test_db: DatabaseFixture) -> None:
    with _as_app(test_db) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SET ROLE {test_db.roles.admin}")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("ALTER TABLE tenantgate.principals DISABLE ROW LEVEL SECURITY")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SET row_security = off; SELECT count(*) FROM tenantgate.principals")


async def test_the_auth_lookup_policy_admits_only_the_named_prefix(
    test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    prefix_b = tenant_b.owner_key.split("_")[1]
    with _as_app(test_db) as conn:
        conn.execute("SELECT set_config('tenantgate.auth_key_prefix', %s, true)", [prefix_b])
        rows = conn.execute("SELECT tenant_id, prefix FROM tenantgate.api_keys").fetchall()
        # The auth lookup policy is SELECT-only: it never lets a key be changed.
        changed = conn.execute("UPDATE tenantgate.api_keys SET name = 'x'").rowcount
    assert rows == [(tenant_b.id, prefix_b)]
    assert changed == 0


async def test_role_attributes(test_db: DatabaseFixture) -> None:
    with psycopg.connect(test_db.superuser) as conn:
        attrs = {
            name: (superuser, bypass)
            for name, superuser, bypass in conn.execute(
                "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY(%s)",
                [[test_db.roles.owner, test_db.roles.app, test_db.roles.admin]],
            )
        }
        owners = {
            r[0] for r in conn.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'tenantgate'")
        }
    assert attrs[test_db.roles.app] == (False, False)
    assert attrs[test_db.roles.owner] == (False, False)
    assert attrs[test_db.roles.admin] == (False, True)
    assert owners == {test_db.roles.owner}


async def test_the_app_role_cannot_write_the_platform_audit_chain(test_db: DatabaseFixture) -> None:
    platform = uuid.UUID(int=0)
    with _as_app(test_db) as conn:
        _enter(conn, platform)  # pretending to be the platform "tenant"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO tenantgate.audit_heads (tenant_id, seq, hash) VALUES (%s, 1, %s)", [platform, b"0" * 32]
            )
        conn.rollback()
        _enter(conn, platform)
        assert conn.execute("SELECT count(*) FROM tenantgate.audit_events").fetchone() == (0,)
