"""`tenantgate retention show|set|run` and `tenantgate drill restore`, as an operator runs them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tenantgate.drills import RestoreDrill, embedded_bin_dir
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.retention import DataClass
from tests.conftest import DatabaseFixture, TenantFixture
from tests.retention_data import count, plant, su
from tests.test_vault_cli import env, tg

__all__ = ["env"]


@pytest.fixture(autouse=True)
def _logs_back_to_stderr() -> Iterator[None]:
    yield
    configure_logging("warning")


@pytest.fixture
def drill_env(env: dict[str, str], test_db: DatabaseFixture) -> dict[str, str]:
    return {**env, "TENANTGATE_DRILL_DATABASE_URL": test_db.superuser}


async def test_show_and_set_from_the_cli(env: dict[str, str], services: Services, tenant_a: TenantFixture) -> None:
    tenant = str(tenant_a.id)
    shown = await tg(env, "retention", "show", "--tenant", tenant)
    assert "messages" in shown.stdout
    assert "365 d" in shown.stdout
    await tg(env, "retention", "set", "--tenant", tenant, "messages=30", "audit_payloads=forever")
    resolved = await services.retention.periods.get(tenant_a.system)
    assert resolved.days(DataClass.MESSAGES) == 30
    assert resolved.days(DataClass.AUDIT_PAYLOADS) is None
    bad = await tg(env, "retention", "set", "--tenant", tenant, "messages=soon", ok=False)
    assert bad.returncode != 0
    assert "CLASS=DAYS" in bad.stderr
    zero = await tg(env, "retention", "set", "--tenant", tenant, "messages=0", ok=False)
    assert zero.returncode != 0
    assert (await services.retention.periods.get(tenant_a.system)).days(DataClass.MESSAGES) == 30
    await tg(env, "retention", "set", "--tenant", tenant, "messages=default")
    assert (await services.retention.periods.get(tenant_a.system)).days(DataClass.MESSAGES) == 365


async def test_dry_run_then_run_from_the_cli(
    env: dict[str, str], services: Services, test_db: DatabaseFixture, artifacts_root: Path, tenant_a: TenantFixture
) -> None:
    await plant(services, test_db, artifacts_root, tenant_a, aged=3)
    tenant = str(tenant_a.id)
    dry = await tg(env, "retention", "run", "--tenant", tenant, "--dry-run")
    assert "would go" in dry.stdout
    assert count(test_db, "messages", tenant_a.id) == 5  # nothing changed
    ran = await tg(env, "retention", "run", "--tenant", tenant)
    assert "what went" in ran.stdout
    assert count(test_db, "messages", tenant_a.id) == 2
    assert count(test_db, "artifacts", tenant_a.id) == 1


async def test_the_restore_drill_passes_from_the_cli(
    drill_env: dict[str, str], services: Services, tenant_a: TenantFixture
) -> None:
    await services.credentials.create(tenant_a.system, name="api", kind="api_key", secret={"api_key": "sk-drill-1"})
    await services.memory.put(tenant_a.system, "note", "remember the drill")
    await services.audit.drain()
    ran = await tg(drill_env, "drill", "restore", "--tenant", str(tenant_a.id))
    for step in ("client tools", "backup", "restore", "row counts", "credentials", "audit chains"):
        assert step in ran.stdout
    assert "1 credentials of 1 tenants open" in ran.stdout
    assert "restore drill passed" in ran.stdout
    assert "FAIL" not in ran.stdout
    assert _scratch_databases(services) == []


def _scratch_databases(services: Services) -> list[str]:
    url = services.settings.owner_database_url
    assert url is not None
    with psycopg.connect(url.get_secret_value()) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'tgdrill_%'")]


async def test_the_restore_drill_detects_a_tampered_restore(
    installation: Installation, services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture
) -> None:
    await services.credentials.create(tenant_a.system, name="api", kind="api_key", secret={"api_key": "sk-drill-2"})
    await services.audit.drain()
    drill = RestoreDrill(
        maintenance_url=test_db.superuser, database=str(make_url(installation.app_url).database),
        app_url=installation.app_url, admin_url=installation.admin_url, roles=installation.roles,
        key_provider=services.vault.provider, bin_dirs=[embedded_bin_dir()],
    )  # fmt: skip

    async def tamper(url: str) -> None:
        # A restored chain whose event says something else, and a credential sealed to another id.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE tenantgate.audit_events SET payload = '{\"forged\": true}' WHERE tenant_id = %s AND seq = 1",
                [tenant_a.id],
            )
            conn.execute("SET session_replication_role = replica")  # past credential_versions' foreign key
            conn.execute("UPDATE tenantgate.credentials SET id = %s WHERE tenant_id = %s", [uuid.uuid4(), tenant_a.id])

    report = await drill.run(tenant_id=tenant_a.id, after_restore=tamper)
    status = {s.name: s.status for s in report.steps}
    assert not report.ok
    assert status["audit chains"] == "fail"
    assert status["credentials"] == "fail"
    assert status["backup"] == status["restore"] == status["row counts"] == "pass"
    assert status["scratch database dropped"] == "pass"
    detail = {s.name: s.detail for s in report.steps}
    assert "broken at seq 1" in detail["audit chains"]
    assert _scratch_databases(services) == []
    # The live database was not touched.
    assert (await services.audit.verify(tenant_a.id)).ok
    with su(test_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM tenantgate.credentials WHERE tenant_id = %s", [tenant_a.id]
        ).fetchone() == (1,)


async def test_a_drill_for_an_unknown_tenant_fails(drill_env: dict[str, str]) -> None:
    ran = await tg(drill_env, "drill", "restore", "--tenant", str(uuid.uuid4()), ok=False)
    assert ran.returncode == 1
    assert "FAILED" in ran.stdout
