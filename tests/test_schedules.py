"""Cron jobs and heartbeat tasks: validated definitions, next runs, limits, versions, roles, isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tenantgate.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from tenantgate.installation import Services
from tenantgate.schedules import CronStore, HeartbeatStore, ScheduleLimits
from tests.conftest import DatabaseFixture, TenantFixture
from tests.state_helpers import actions, as_app, member_key

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TIGHT = ScheduleLimits(max_cron_jobs=2, min_cron_interval_seconds=300, max_heartbeat_tasks=1,
                       min_heartbeat_interval_seconds=900)  # fmt: skip


@pytest.fixture
def cron(services: Services) -> CronStore:
    return CronStore(db=services.db, audit=services.audit, limits=TIGHT, clock=lambda: NOW)


@pytest.fixture
def heartbeat(services: Services) -> HeartbeatStore:
    return HeartbeatStore(db=services.db, audit=services.audit, limits=TIGHT, clock=lambda: NOW)


async def test_jobs_of_each_kind_get_their_next_run(cron: CronStore, tenant_a: TenantFixture) -> None:
    ctx = tenant_a.system
    once = await cron.add(ctx, name="launch", kind="at", schedule="2026-06-02T09:00:00+02:00", message="Launch!")
    weekday = await cron.add(ctx, name="standup", kind="cron", schedule="30 9 * * 1-5", timezone="Europe/Berlin",
                             message="Summarize yesterday's tickets.")  # fmt: skip
    assert once.next_run_at == datetime(2026, 6, 2, 7, tzinfo=UTC)
    assert weekday.next_run_at == datetime(2026, 6, 2, 7, 30, tzinfo=UTC)  # Tuesday 09:30 CEST
    assert [j.name for j in await cron.jobs(ctx)] == ["launch", "standup"]


async def test_limits_refuse_too_many_or_too_frequent_jobs(cron: CronStore, tenant_a: TenantFixture) -> None:
    ctx = tenant_a.system
    with pytest.raises(InvalidInput, match="shortest interval allowed here is 300 s"):
        await cron.add(ctx, name="spam", kind="cron", schedule="* * * * *", message="x")
    with pytest.raises(InvalidInput, match="shortest interval"):
        await cron.add(ctx, name="spam", kind="every", schedule=120, message="x")
    with pytest.raises(InvalidInput, match="in the past"):
        await cron.add(ctx, name="late", kind="at", schedule="2020-01-01T00:00:00Z", message="x")
    await cron.add(ctx, name="one", kind="every", schedule=300, message="x")
    await cron.add(ctx, name="two", kind="every", schedule=3600, message="x")
    with pytest.raises(QuotaExceeded) as refused:
        await cron.add(ctx, name="three", kind="every", schedule=3600, message="x")
    assert refused.value.fields == {"limit": 2}
    await cron.remove(ctx, "one")
    await cron.add(ctx, name="three", kind="every", schedule=3600, message="x")  # room again


async def test_concurrent_adds_cannot_both_take_the_last_slot(cron: CronStore, tenant_a: TenantFixture) -> None:
    ctx = tenant_a.system
    await cron.add(ctx, name="first", kind="every", schedule=600, message="x")
    results = await asyncio.gather(
        *(cron.add(ctx, name=f"racer{i}", kind="every", schedule=600, message="x") for i in range(4)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, BaseException))
    assert len(await cron.jobs(ctx)) == 2


async def test_every_change_keeps_a_version_and_is_audited(
    services: Services, cron: CronStore, tenant_a: TenantFixture
) -> None:
    ctx = tenant_a.system
    job = await cron.add(ctx, name="digest", kind="every", schedule=86400, message="Send the digest.")
    with pytest.raises(Conflict):
        await cron.add(ctx, name="digest", kind="every", schedule=3600, message="again")
    removed = await cron.remove(ctx, job.id)
    assert (removed.version, removed.next_run_at) == (2, None)
    assert await cron.jobs(ctx) == []
    with pytest.raises(NotFound):
        await cron.get(ctx, job.id)
    history = await cron.versions(ctx, job.id)
    assert [(v.version, v.change, v.definition["schedule"]) for v in history] == [
        (1, "created", "86400"),
        (2, "removed", "86400"),
    ]
    assert await actions(services, tenant_a, "cron.") == ["cron.created", "cron.removed"]
    # The name is free again once the job is removed.
    assert (await cron.add(ctx, name="digest", kind="every", schedule=3600, message="new")).version == 1


async def test_heartbeats_add_pause_resume_remove(
    services: Services, heartbeat: HeartbeatStore, tenant_a: TenantFixture
) -> None:
    ctx = tenant_a.system
    with pytest.raises(InvalidInput, match="every 900 to"):
        await heartbeat.add(ctx, name="inbox", prompt="Check the inbox.", every_seconds=60)
    task = await heartbeat.add(ctx, name="inbox", prompt="Check the inbox.", every_seconds=3600)
    assert (task.enabled, task.next_due_at) == (True, NOW + timedelta(hours=1))
    with pytest.raises(QuotaExceeded):
        await heartbeat.add(ctx, name="other", prompt="x", every_seconds=3600)
    paused = await heartbeat.pause(ctx, "inbox")
    assert (paused.enabled, paused.next_due_at) == (False, None)
    resumed = await heartbeat.resume(ctx, task.id)
    assert (resumed.enabled, resumed.next_due_at) == (True, NOW + timedelta(hours=1))
    changed = await heartbeat.update(ctx, task.id, every_seconds=7200, prompt="Check the inbox and the calendar.")
    assert (changed.every_seconds, changed.next_due_at) == (7200, NOW + timedelta(hours=2))
    await heartbeat.remove(ctx, "inbox")
    assert await heartbeat.tasks(ctx) == []
    assert await actions(services, tenant_a, "heartbeat.") == [
        "heartbeat.created", "heartbeat.paused", "heartbeat.resumed", "heartbeat.updated", "heartbeat.removed",
    ]  # fmt: skip


async def test_another_tenant_cannot_see_or_change_schedules(
    cron: CronStore, heartbeat: HeartbeatStore, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    job = await cron.add(tenant_a.system, name="a-job", kind="every", schedule=600, message="A only")
    task = await heartbeat.add(tenant_a.system, name="a-task", prompt="A only", every_seconds=900)
    b = tenant_b.system
    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: cron.get(b, job.id),
        lambda: cron.remove(b, job.id),
        lambda: cron.remove(b, "a-job"),
        lambda: cron.versions(b, job.id),
        lambda: heartbeat.pause(b, task.id),
        lambda: heartbeat.remove(b, "a-task"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound):
            await attempt()
    assert await cron.jobs(tenant_b.system) == []
    assert await heartbeat.tasks(tenant_b.system) == []
    assert (await cron.get(tenant_a.system, job.id)).enabled
    assert (await heartbeat.get(tenant_a.system, task.id)).enabled


async def test_sql_level_isolation_of_schedule_tables(
    cron: CronStore, heartbeat: HeartbeatStore, test_db: DatabaseFixture, tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> None:  # fmt: skip
    job = await cron.add(tenant_a.system, name="a-job", kind="every", schedule=600, message="A only")
    await heartbeat.add(tenant_a.system, name="a-task", prompt="A only", every_seconds=900)
    with as_app(test_db, tenant_b.id) as conn:
        for table in ("cron_jobs", "cron_job_versions", "heartbeat_tasks"):
            assert conn.execute(f"SELECT count(*) FROM tenantgate.{table}").fetchone() == (0,), table
        assert conn.execute("UPDATE tenantgate.cron_jobs SET enabled = false").rowcount == 0
        assert conn.execute("UPDATE tenantgate.heartbeat_tasks SET enabled = false").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO tenantgate.cron_job_versions (tenant_id, job_id, version, definition, change, changed_by)"
                " VALUES (%s, %s, 9, '{}', 'updated', gen_random_uuid())",
                [tenant_a.id, job.id],
            )
    with as_app(test_db, tenant_a.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM tenantgate.cron_job_versions")


async def test_schedules_over_http_members_read_managers_write(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    owner, member = tenant_a.headers(), tenant_a.headers(await member_key(services, tenant_a))
    body = {"name": "report", "kind": "cron", "schedule": "0 8 * * 1", "timezone": "UTC", "message": "Weekly report."}
    assert (await client.post("/v1/cron-jobs", json=body, headers=member)).status_code == 403
    created = await client.post("/v1/cron-jobs", json=body, headers=owner)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert [j["name"] for j in (await client.get("/v1/cron-jobs", headers=member)).json()] == ["report"]
    detail = (await client.get(f"/v1/cron-jobs/{job_id}", headers=member)).json()
    assert [v["change"] for v in detail["versions"]] == ["created"]
    too_often = await client.post("/v1/cron-jobs", json={**body, "name": "x", "schedule": "* * * * *"}, headers=owner)
    assert (too_often.status_code, too_often.json()["min_interval_seconds"]) == (422, 300)

    hb = await client.post("/v1/heartbeats", json={"name": "inbox", "prompt": "Check mail.", "every_seconds": 1800},
                           headers=owner)  # fmt: skip
    assert hb.status_code == 201, hb.text
    task_id = hb.json()["id"]
    assert (await client.patch(f"/v1/heartbeats/{task_id}", json={"enabled": False}, headers=member)).status_code == 403
    paused = await client.patch(f"/v1/heartbeats/{task_id}", json={"enabled": False}, headers=owner)
    assert (paused.json()["enabled"], paused.json()["next_due_at"]) == (False, None)
    assert (await client.get(f"/v1/heartbeats/{task_id}", headers=member)).json()["name"] == "inbox"

    other = tenant_b.headers()
    assert (await client.get(f"/v1/cron-jobs/{job_id}", headers=other)).status_code == 404
    assert (await client.delete(f"/v1/cron-jobs/{job_id}", headers=other)).status_code == 404
    assert (await client.get(f"/v1/heartbeats/{task_id}", headers=other)).status_code == 404
    assert (await client.patch(f"/v1/heartbeats/{task_id}", json={"enabled": True}, headers=other)).status_code == 404
    assert (await client.delete(f"/v1/heartbeats/{task_id}", headers=other)).status_code == 404
    assert (await client.get("/v1/cron-jobs", headers=other)).json() == []
    assert (await client.get("/v1/heartbeats", headers=other)).json() == []

    assert (await client.delete(f"/v1/cron-jobs/{job_id}", headers=owner)).json()["version"] == 2
    assert (await client.delete(f"/v1/heartbeats/{task_id}", headers=owner)).status_code == 200
    assert (await client.get("/v1/heartbeats", headers=owner)).json() == []


async def test_saas_count_limit_over_http_is_429(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    limit = services.cron.limits.max_cron_jobs
    assert limit == 20  # the saas default
    for i in range(limit):
        await services.cron.add(tenant_a.system, name=f"job{i}", kind="every", schedule=3600, message="x")
    body = {"name": "one-more", "kind": "every", "schedule": "3600", "message": "x"}
    refused = await client.post("/v1/cron-jobs", json=body, headers=tenant_a.headers())
    assert (refused.status_code, refused.json()["code"], refused.json()["limit"]) == (429, "quota_exceeded", 20)
