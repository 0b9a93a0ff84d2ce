"""Purge by tenant: two tenants with data in every table; purge A; nothing of A is left, B is unchanged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tenantgate.audit import PLATFORM_CHAIN
from tenantgate.cli import app as cli_app
from tenantgate.errors import Conflict, TenantgateError
from tenantgate.installation import Services
from tenantgate.logs import configure_logging
from tenantgate.purge import KEPT, PurgeConfirmationRequired, PurgeNotDue, PurgeNotFound, PurgeService, PurgeState
from tenantgate.tenants import TenantStatus
from tenantgate.vault import CredentialUnreadable, LocalKeyFile, TenantSecrets
from tests.conftest import MASTER_KEY, PEPPER, DatabaseFixture, TenantFixture, new_tenant
from tests.purge_fill import dump_tenant, fill_tenant, tenant_row_counts

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "procrastinate.procrastinate_jobs"


async def platform_headers(services: Services) -> dict[str, str]:
    _, key = await services.platform_keys.create(f"ops-{uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {key}"}


def _copy_key_rows(
    test_db: DatabaseFixture, tenant_id: uuid.UUID
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The tenant's data key and credential rows, as a database backup holds them."""
    with psycopg.connect(test_db.superuser) as conn:
        keys = conn.execute("SELECT * FROM tenantgate.tenant_data_keys WHERE tenant_id = %s", [tenant_id]).fetchall()
        creds = conn.execute("SELECT * FROM tenantgate.credentials WHERE tenant_id = %s", [tenant_id]).fetchall()
    return keys, creds


def _restore_key_rows(
    test_db: DatabaseFixture, keys: list[tuple[object, ...]], creds: list[tuple[object, ...]]
) -> None:
    with psycopg.connect(test_db.superuser) as conn:
        for row in keys:
            marks = ", ".join(["%s"] * len(row))
            conn.execute(f"INSERT INTO tenantgate.tenant_data_keys VALUES ({marks})", list(row))
        for row in creds:
            marks = ", ".join(["%s"] * len(row))
            conn.execute(
                f"INSERT INTO tenantgate.credentials VALUES ({marks})",
                [psycopg.types.json.Jsonb(v) if isinstance(v, dict) else v for v in row],
            )


def _delete_key_rows(test_db: DatabaseFixture, tenant_id: uuid.UUID) -> None:
    with psycopg.connect(test_db.superuser) as conn:
        conn.execute("DELETE FROM tenantgate.credentials WHERE tenant_id = %s", [tenant_id])
        conn.execute("DELETE FROM tenantgate.tenant_data_keys WHERE tenant_id = %s", [tenant_id])


async def test_purge_removes_every_row_object_and_key_of_a_and_leaves_b_byte_for_byte(
    services: Services, client: httpx.AsyncClient, test_db: DatabaseFixture
) -> None:
    a = await new_tenant(services, "purge-a")
    b = await new_tenant(services, "purge-b")
    secret_a, secret_b = "sk-purge-a-" + uuid.uuid4().hex, "sk-purge-b-" + uuid.uuid4().hex
    await fill_tenant(services, a, secret=secret_a)
    await fill_tenant(services, b, secret=secret_b)
    # An orphan: bytes under A's prefix that no row points at. Storage is listed, not the rows.
    storage = services.artifacts._storage  # the test plants the orphan as a crash mid-upload would
    await asyncio.to_thread(storage.put, f"{a.id}/{'0' * 32}", b"orphaned bytes")

    counts = tenant_row_counts(test_db, a.id)
    empty = sorted(table for table, n in counts.items() if n == 0 and table != "tenant_purges")  # written by the purge
    assert empty == [], f"fill_tenant does not fill {empty}: add them to tests/purge_fill.py"
    assert len(await services.artifacts.stored_keys(a.id)) == 3
    backup_keys, backup_creds = _copy_key_rows(test_db, a.id)  # the "pg_dump" taken before the purge
    assert backup_keys
    assert backup_creds
    b_before = dump_tenant(test_db, b.id)
    b_objects = sorted(await services.artifacts.stored_keys(b.id))
    ops = await platform_headers(services)

    # Request: recorded, and A is disabled at once.
    assert (await client.get("/v1/memory", headers=a.headers())).status_code == 200
    requested = await client.post(f"/v1/platform/tenants/{a.id}/purge", json={"reason": "contract ended"}, headers=ops)
    assert requested.status_code == 202, requested.text
    body = requested.json()
    assert body["state"] == "requested"
    assert body["reason"] == "contract ended"
    assert body["requested_by"].startswith("platform:")
    assert body["report"] == {"runs_cancelled": 1, "directives_cancelled": 1, "queued_jobs_dropped": 1}
    refused = await client.get("/v1/memory", headers=a.headers())
    assert refused.status_code == 401
    assert (await services.tenants.get(a.id)).status is TenantStatus.PURGING
    async with services.db.admin() as conn:
        run = (await conn.execute(sa.text("SELECT cancel_requested FROM tenantgate.runs WHERE tenant_id = :t"),
                                  {"t": a.id})).scalar_one()  # fmt: skip
        directive = (await conn.execute(sa.text("SELECT status FROM tenantgate.directives WHERE tenant_id = :t"),
                                        {"t": a.id})).scalar_one()  # fmt: skip
    assert run is True
    assert directive == "canceled"
    assert tenant_row_counts(test_db, a.id)["procrastinate.procrastinate_jobs"] == 0  # queued jobs dropped

    # Execute: refused before the grace period, and now without the tenant's name.
    early = await client.post(f"/v1/platform/tenants/{a.id}/purge/execute", json={}, headers=ops)
    assert early.status_code == 409
    assert early.json()["code"] == "purge_not_due"
    unconfirmed = await client.post(f"/v1/platform/tenants/{a.id}/purge/execute", json={"now": True}, headers=ops)
    assert unconfirmed.status_code == 422
    assert unconfirmed.json()["code"] == "purge_confirmation_required"
    wrong = await client.post(
        f"/v1/platform/tenants/{a.id}/purge/execute", json={"now": True, "confirm": b.tenant.name}, headers=ops
    )
    assert wrong.json()["code"] == "purge_confirmation_required"
    assert sum(tenant_row_counts(test_db, a.id).values()) > 20  # refusals changed nothing

    done = await client.post(
        f"/v1/platform/tenants/{a.id}/purge/execute", json={"now": True, "confirm": a.tenant.name}, headers=ops
    )
    assert done.status_code == 200, done.text
    report = done.json()
    assert report["state"] == "completed"
    assert report["steps"] == ["disable", "keys", "rows", "storage", "audit", "tombstone", "report"]
    assert report["finished_at"] is not None
    assert report["report"]["objects_deleted"] == 3
    assert report["report"]["data_keys_destroyed"] == 1
    assert report["report"]["tenant_kek_destroyed"] is True
    assert report["report"]["audit_events_erased"] > 10
    assert report["report"]["queued_jobs_dropped"] == 1  # at request time
    assert report["report"]["runs_cancelled"] == 1
    rows = report["report"]["rows"]
    for table, n in counts.items():
        if table not in KEPT and table != QUEUE:
            assert rows[table] == n, table

    # Nothing of A is left, except the stated exceptions.
    after = tenant_row_counts(test_db, a.id)
    assert {t: n for t, n in after.items() if n and t not in KEPT} == {}
    assert after["tenant_purges"] == 1
    assert after["audit_heads"] == 1
    assert await services.artifacts.stored_keys(a.id) == []
    with psycopg.connect(test_db.superuser) as conn:
        tombstone = conn.execute("SELECT name, display_name, status FROM tenantgate.tenants WHERE id = %s",
                                 [a.id]).fetchone()  # fmt: skip
        payloads = conn.execute(
            "SELECT action, payload IS NULL, erased_at IS NOT NULL FROM tenantgate.audit_events"
            " WHERE tenant_id = %s ORDER BY seq", [a.id],
        ).fetchall()  # fmt: skip
        dump_text = "\n".join(
            str(r[0]) for r in conn.execute("SELECT to_jsonb(e)::text FROM tenantgate.audit_events e"
                                            " WHERE tenant_id = %s OR tenant_id = %s", [a.id, PLATFORM_CHAIN])
        )  # fmt: skip
    assert tombstone == (f"purged-{a.id}", "purged", "purged")
    assert a.tenant.name not in dump_text  # the platform chain's events about A were erased too
    assert secret_a not in dump_text
    *erased, last = payloads
    assert all(is_null and was_erased for _, is_null, was_erased in erased)
    assert last[0] == "tenant.purged"
    assert not last[1]
    report_a = await services.audit.verify(a.id)
    assert report_a.ok, report_a.reason
    assert (await services.audit.verify(PLATFORM_CHAIN)).ok

    # B: every row, byte for byte, and every object.
    assert dump_tenant(test_db, b.id) == b_before
    assert sorted(await services.artifacts.stored_keys(b.id)) == b_objects
    opened = await services.credentials.use(b.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert dict(opened.secret) == {"api_key": secret_b}
    assert (await client.get("/v1/memory", headers=b.headers())).status_code == 200  # B's keys never stopped

    # The report is on the record and readable later.
    shown = await client.get(f"/v1/platform/tenants/{a.id}/purge", headers=ops)
    assert shown.json()["report"] == report["report"]
    assert (await client.post(f"/v1/platform/tenants/{a.id}/purge/cancel", headers=ops)).status_code == 409

    # A backup taken before the purge, restored: A's credential does not open, not even with the master key.
    _restore_key_rows(test_db, backup_keys, backup_creds)
    try:
        with pytest.raises(CredentialUnreadable):
            await services.credentials.use(a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
        fresh = LocalKeyFile.from_master_key(
            MASTER_KEY, tenant_secrets=TenantSecrets(services.settings.tenant_keys_dir)
        )
        key_row = backup_keys[0]
        kek_id, wrapped = str(key_row[4]), bytes(key_row[5])  # type: ignore[arg-type]
        assert kek_id.endswith(":t")
        with pytest.raises(CredentialUnreadable):
            fresh.unwrap(kek_id, wrapped, {"tenant_id": str(a.id), "data_key_id": str(key_row[1])})
    finally:
        _delete_key_rows(test_db, a.id)


async def test_a_table_added_later_is_found_in_the_catalog_and_purged(
    services: Services, test_db: DatabaseFixture
) -> None:
    a, b = await new_tenant(services, "probe-a"), await new_tenant(services, "probe-b")
    roles = test_db.roles
    with psycopg.connect(test_db.urls.owner) as conn:
        conn.execute(
            "CREATE TABLE tenantgate.purge_probe (tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),"
            " id bigint GENERATED ALWAYS AS IDENTITY, note text, PRIMARY KEY (tenant_id, id))"
        )
        conn.execute("ALTER TABLE tenantgate.purge_probe ENABLE ROW LEVEL SECURITY")
        conn.execute("ALTER TABLE tenantgate.purge_probe FORCE ROW LEVEL SECURITY")
        conn.execute(
            "CREATE POLICY tenant_isolation ON tenantgate.purge_probe USING"
            " (tenant_id = nullif(current_setting('tenantgate.tenant_id', true), '')::uuid)"
            " WITH CHECK (tenant_id = nullif(current_setting('tenantgate.tenant_id', true), '')::uuid)"
        )
        conn.execute(f'GRANT ALL ON tenantgate.purge_probe TO "{roles.admin}"')
    with psycopg.connect(test_db.superuser) as conn:  # the owner is held by the forced policy too
        conn.execute(
            "INSERT INTO tenantgate.purge_probe (tenant_id, note) SELECT t, 'n' || g"
            " FROM unnest(ARRAY[%s, %s]::uuid[]) t, generate_series(1, 7) g",
            [a.id, b.id],
        )
    try:
        await services.purges.request(a.id, reason="probe", requested_by="test")
        record = await services.purges.execute(a.id, executed_by="test", now=True, confirm=a.tenant.name)
        assert record.report["rows"]["purge_probe"] == 7
        with psycopg.connect(test_db.superuser) as conn:
            left = dict(conn.execute("SELECT tenant_id, count(*) FROM tenantgate.purge_probe GROUP BY 1").fetchall())
        assert left == {b.id: 7}
    finally:
        with psycopg.connect(test_db.urls.owner) as conn:
            conn.execute("DROP TABLE tenantgate.purge_probe")


async def test_cancel_before_execution_gives_the_tenant_back(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    ops = await platform_headers(services)
    await services.tenants.set_status(tenant_a.id, TenantStatus.SUSPENDED)
    record = await services.purges.request(tenant_a.id, reason="mistake", requested_by="test")
    assert record.state is PurgeState.REQUESTED
    with pytest.raises(Conflict):
        await services.tenants.set_status(tenant_a.id, TenantStatus.ACTIVE)  # only cancelling brings it back
    second = await client.post(f"/v1/platform/tenants/{tenant_a.id}/purge", json={"reason": "again"}, headers=ops)
    assert second.status_code == 409
    cancelled = await client.post(f"/v1/platform/tenants/{tenant_a.id}/purge/cancel", headers=ops)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["cancelled_by"].startswith("platform:")
    assert (await services.tenants.get(tenant_a.id)).status is TenantStatus.SUSPENDED  # as before the request
    await services.tenants.set_status(tenant_a.id, TenantStatus.ACTIVE)
    assert (await client.get("/v1/memory", headers=tenant_a.headers())).status_code == 200
    with pytest.raises(PurgeNotFound):  # nothing to execute any more
        await services.purges.execute(tenant_a.id, executed_by="test", now=True, confirm=tenant_a.tenant.name)
    await services.audit.drain()
    actions = [r.action for r in await services.audit.page(tenant_a.system, limit=500)]
    assert "tenant.purge_requested" in actions
    assert "tenant.purge_cancelled" in actions
    assert (await services.audit.verify(tenant_a.id)).ok


async def test_the_worker_executes_a_purge_once_its_grace_period_has_passed(
    services: Services, test_db: DatabaseFixture
) -> None:
    a, b = await new_tenant(services, "grace-a"), await new_tenant(services, "grace-b")
    await fill_tenant(services, a, secret="sk-grace-" + uuid.uuid4().hex)
    b_before = dump_tenant(test_db, b.id)
    waiting = PurgeService(db=services.db, audit=services.audit, vault=services.vault, artifacts=services.artifacts,
                           mode=services.settings.mode, grace=timedelta(days=7))  # fmt: skip
    await waiting.request(a.id, reason="grace", requested_by="test")
    assert a.id not in [r.tenant_id for r in await waiting.run_due()]  # not due yet
    with pytest.raises(PurgeNotDue):
        await waiting.execute(a.id, executed_by="test")
    with pytest.raises(PurgeConfirmationRequired):
        await waiting.execute(a.id, executed_by="test", now=True)
    with psycopg.connect(test_db.superuser) as conn:  # seven days pass
        conn.execute("UPDATE tenantgate.tenant_purges SET execute_after = now() - interval '1 second'"
                     " WHERE tenant_id = %s", [a.id])  # fmt: skip
    ran = await waiting.run_due(executed_by="worker")
    assert [r.tenant_id for r in ran if r.tenant_id == a.id] == [a.id]
    record = await waiting.get(a.id)
    assert record.state is PurgeState.COMPLETED
    assert record.executed_by == "worker"
    assert {t: n for t, n in tenant_row_counts(test_db, a.id).items() if n and t not in KEPT} == {}
    assert dump_tenant(test_db, b.id) == b_before


def _cli_env(test_db: DatabaseFixture, batch: int) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "TENANTGATE_DATABASE_URL": test_db.urls.app,
        "TENANTGATE_ADMIN_DATABASE_URL": test_db.urls.admin,
        "TENANTGATE_DB_ROLE_PREFIX": test_db.roles.owner.removesuffix("_owner"),
        "TENANTGATE_PEPPER": PEPPER,
        "TENANTGATE_MASTER_KEY": MASTER_KEY,
        "TENANTGATE_PURGE_BATCH_ROWS": str(batch),
    }


def _start(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log)


async def test_a_purge_killed_midway_continues_on_the_next_run_with_exact_counts(
    services: Services, test_db: DatabaseFixture, tmp_path: Path
) -> None:
    a, b = await new_tenant(services, "kill-a"), await new_tenant(services, "kill-b")
    await fill_tenant(services, a, secret="sk-kill-" + uuid.uuid4().hex)
    await fill_tenant(services, b, secret="sk-kill-b-" + uuid.uuid4().hex)
    entries = 3000
    with psycopg.connect(test_db.superuser) as conn:
        conn.execute(
            "INSERT INTO tenantgate.memory_entries (tenant_id, id, key, title, content, tags, version, created_by,"
            " updated_by) SELECT %s, gen_random_uuid(), 'bulk.' || g, 't', 'c' || g, '{}', 1, %s, %s"
            " FROM generate_series(1, %s) g",
            [a.id, a.owner_id, a.owner_id, entries],
        )
    b_before = dump_tenant(test_db, b.id)
    await services.purges.request(a.id, reason="kill test", requested_by="test")
    before = tenant_row_counts(test_db, a.id)

    command = [sys.executable, "-m", "tenantgate", "tenants", "purge", str(a.id), "--execute", "--now", "--confirm"]
    log_path = tmp_path / "purge.log"
    child = _start(command, _cli_env(test_db, batch=3), log_path)
    try:
        for _ in range(3000):  # until the first batches of rows have gone
            record = await services.purges.get(a.id)
            if record.rows_deleted >= 30:
                break
            assert child.poll() is None, log_path.read_text(errors="replace")
            await asyncio.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        assert await asyncio.to_thread(child.wait, 30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    interrupted = await services.purges.get(a.id)
    assert interrupted.state is PurgeState.EXECUTING
    assert "report" not in interrupted.steps
    assert 0 < interrupted.rows_deleted < sum(n for t, n in before.items() if t not in KEPT)

    # The rerun needs no confirmation: the decision was made when the purge started.
    finished = await services.purges.execute(a.id, executed_by="test")
    assert finished.state is PurgeState.COMPLETED
    assert finished.report["rows"]["memory_entries"] == before["memory_entries"] == entries + 1
    for table, n in before.items():
        if table not in KEPT:
            assert finished.report["rows"][table] == n, table
    assert {t: n for t, n in tenant_row_counts(test_db, a.id).items() if n and t not in KEPT} == {}
    assert await services.artifacts.stored_keys(a.id) == []
    assert (await services.audit.verify(a.id)).ok
    assert dump_tenant(test_db, b.id) == b_before


@pytest.fixture
def _logs_back_to_stderr() -> Iterator[None]:
    # The CLI points logging at the runner's captured stderr, which is closed afterwards.
    yield
    configure_logging("warning")


@pytest.mark.usefixtures("_logs_back_to_stderr")
async def test_the_cli_requests_refuses_executes_and_prints_the_report(
    services: Services, test_db: DatabaseFixture
) -> None:
    tenant = await new_tenant(services, "cli-purge")
    await services.memory.put(tenant.system, "k", "content")
    env = _cli_env(test_db, batch=100)

    def tg(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli_app, ["tenants", "purge", str(tenant.id), *args], env=env)
        error = result.exception  # `tenantgate` (main) prints these; the runner hands them back
        if isinstance(error, TenantgateError):
            return 2, result.stdout, f"({error.code}): {error.message}"
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = await asyncio.to_thread(tg)
    assert code != 0  # one of --reason, --execute, --cancel, --show
    code, out, err = await asyncio.to_thread(tg, "--reason", "customer asked")
    assert code == 0, err
    assert "requested" in out
    assert "customer asked" in out
    code, out, err = await asyncio.to_thread(tg, "--execute")
    assert code != 0
    assert "grace period" in err
    code, out, err = await asyncio.to_thread(tg, "--execute", "--now")
    assert code != 0
    assert "confirm" in err
    assert (await services.tenants.get(tenant.id)).status is TenantStatus.PURGING
    code, out, err = await asyncio.to_thread(tg, "--execute", "--now", "--confirm")
    assert code == 0, err
    assert "completed" in out
    assert "memory_entries" in out
    assert "objects deleted: 0" in out
    code, out, err = await asyncio.to_thread(tg, "--show")
    assert "completed" in out
    assert (await services.tenants.get(tenant.id)).status is TenantStatus.PURGED


async def test_a_tenant_being_purged_runs_no_scheduled_jobs(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    job = await services.cron.add(tenant_a.system, name="soon", kind="every", schedule=300, message="hello")
    control = await services.cron.add(tenant_b.system, name="soon", kind="every", schedule=300, message="hello")
    await services.purges.request(tenant_a.id, reason="stop", requested_by="test")
    later = datetime.now(UTC) + timedelta(hours=1)
    ran = [r.id for r in await services.schedules.run_due(now=later)]
    assert job.id not in ran
    assert control.id in ran
