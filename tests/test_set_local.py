"""Row-security settings are set with ``SET LOCAL`` (which Citus replays on its workers), never ``set_config``.

``SET`` takes no bind parameters, so values travel as quoted literals: hostile key prefixes and
tenant names must arrive as plain values (no SQL error, nothing changed, authentication fails).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest

from tenantgate.errors import Unauthenticated
from tenantgate.installation import Services
from tenantgate.store import POLICY_SETTINGS, TENANT_SETTING, set_local
from tests.conftest import DatabaseFixture, TenantFixture

SRC = Path(__file__).resolve().parents[1] / "src" / "tenantgate"
# Migrations are history (0002 created the functions with set_config, 0019's downgrade restores
# that): the migrated catalog is what runs, and it is checked below.
HISTORY = SRC / "store" / "migrations" / "versions"
SET_CONFIG = re.compile(r"set_config\(\s*'tenantgate\.")
HOSTILE = [
    "x'; DROP TABLE tenantgate.tenants; --",
    "a\\b\\'c",
    "'",
    "\\",
    "$$;$$",
    "é'\";\\n",
]


def _counts(test_db: DatabaseFixture) -> tuple[object, ...]:
    with psycopg.connect(test_db.superuser) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM tenantgate.tenants), (SELECT count(*) FROM tenantgate.api_keys),"
            " (SELECT count(*) FROM tenantgate.principals)"
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_no_source_sets_a_policy_setting_with_set_config() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if HISTORY not in path.parents and SET_CONFIG.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    # The check finds what it looks for.
    assert SET_CONFIG.search((HISTORY / "0002_audit.py").read_text(encoding="utf-8"))


async def test_no_function_in_the_catalog_sets_a_policy_setting_with_set_config(test_db: DatabaseFixture) -> None:
    with psycopg.connect(test_db.superuser) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'tenantgate'"
        ).fetchall()
    bodies = {str(name): str(src) for name, src in rows}
    assert [name for name, src in bodies.items() if SET_CONFIG.search(src)] == []
    for name in ("audit_lock_heads", "audit_write"):
        assert "EXECUTE format('SET LOCAL tenantgate.tenant_id = %L'" in bodies[name], name


def test_only_policy_settings_are_built() -> None:
    with pytest.raises(ValueError, match="not a tenantgate row-security setting"):
        set_local("search_path", "public")
    with pytest.raises(ValueError, match="not a tenantgate row-security setting"):
        set_local("tenantgate.tenant_id = 'x'; --", "y")


@pytest.mark.parametrize("value", HOSTILE)
async def test_a_hostile_value_is_set_verbatim(test_db: DatabaseFixture, value: str) -> None:
    with psycopg.connect(test_db.urls.app) as conn:
        for name in sorted(POLICY_SETTINGS - {TENANT_SETTING}):
            conn.execute(set_local(name, value))
            assert conn.execute("SELECT current_setting(%s)", [name]).fetchone() == (value,)
        conn.rollback()
        # Transaction-local: gone with the transaction.
        assert conn.execute("SELECT current_setting('tenantgate.auth_key_prefix', true)").fetchone() in {("",), (None,)}


async def test_a_nul_character_is_refused_before_anything_is_sent(test_db: DatabaseFixture) -> None:
    with psycopg.connect(test_db.urls.app) as conn, pytest.raises(psycopg.DataError, match="NUL"):
        conn.execute(set_local("tenantgate.auth_tenant_name", "a\x00b"))


async def test_a_uuid_is_set_from_a_uuid(test_db: DatabaseFixture, tenant_a: TenantFixture) -> None:
    with psycopg.connect(test_db.urls.app) as conn:
        statement = set_local(TENANT_SETTING, tenant_a.id).as_string(conn)
        assert statement == f"SET LOCAL {TENANT_SETTING} = '{tenant_a.id}'"
        conn.execute(set_local(TENANT_SETTING, tenant_a.id))
        assert conn.execute("SELECT id FROM tenantgate.tenants").fetchall() == [(tenant_a.id,)]


async def _looked_up(services: Services, value: str, *, by_tenant_name: bool) -> tuple[object, object]:
    """The auth transaction's setting and what it lets through, after naming ``value``."""
    setting, table = ("auth_tenant_name", "tenants") if by_tenant_name else ("auth_key_prefix", "api_keys")
    query = (
        f"SELECT current_setting('tenantgate.{setting}') AS setting,"
        f" (SELECT count(*) FROM tenantgate.{table}) AS visible"
    )
    async with services.db.authenticating() as tx:
        find = tx.find_tenant if by_tenant_name else tx.find_by_prefix
        row = await find(value, query, ())
    return row.setting, row.visible


@pytest.mark.parametrize("by_tenant_name", [False, True], ids=["key_prefix", "tenant_name"])
@pytest.mark.parametrize("value", HOSTILE)
async def test_a_hostile_prefix_or_tenant_name_is_a_plain_value(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture, value: str, by_tenant_name: bool
) -> None:
    before = _counts(test_db)
    assert await _looked_up(services, value, by_tenant_name=by_tenant_name) == (value, 0)
    if by_tenant_name:  # a key prefix this hostile never passes the key format (tests/test_auth_http.py)
        with pytest.raises(Unauthenticated) as refused:
            await services.console.login(value, "owner", "a password long enough", request_id=str(uuid.uuid4()))
        assert refused.value.code == "unauthenticated"
        await services.audit.drain()
    assert _counts(test_db) == before
