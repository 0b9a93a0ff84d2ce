"""The worker's schedule runs: due cron jobs and heartbeat tasks become agent turns, once each.

Time is moved by setting a job's next run into the past (as the clock would), then
``ScheduleRunner.run_due`` runs what is due, exactly as the worker's loop does.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tenantgate.context import TenantContext
from tenantgate.installation import Services
from tests.conftest import TenantFixture, new_tenant


async def _owner(services: Services, reply: str) -> tuple[TenantFixture, TenantContext]:
    tenant = await new_tenant(services, "sched")
    await services.policies.set_policy(
        tenant.system, {"ai": {"planner": {"provider": "scripted", "script": [{"reply": reply}]}}}
    )
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="test")
    return tenant, owner


async def _make_due(services: Services, table: str, column: str, job_id: object) -> None:
    async with services.db.admin() as conn:
        await conn.execute(
            sa.text(f"UPDATE tenantgate.{table} SET {column} = now() - interval '1 second' WHERE id = :id"),
            {"id": job_id},
        )


async def test_a_due_cron_job_runs_once_as_its_creator_and_records_the_outcome(services: Services) -> None:
    a, owner_a = await _owner(services, "Weekly report is ready.")
    b, owner_b = await _owner(services, "B's report.")
    job = await services.cron.add(owner_a, name="report", kind="every", schedule=3600, message="Write the report")
    other = await services.cron.add(owner_b, name="report", kind="every", schedule=3600, message="B only")
    await _make_due(services, "cron_jobs", "next_run_at", job.id)

    ran = await services.schedules.run_due()
    again = await services.schedules.run_due()  # nothing is due any more
    # Two workers at once still run it once: the claim is a row lock taken with SKIP LOCKED.
    await _make_due(services, "cron_jobs", "next_run_at", job.id)
    racing = await asyncio.gather(services.schedules.run_due(), services.schedules.run_due())

    mine = [r for r in ran if r.tenant_id == a.id]
    assert [(r.kind, r.id, r.status) for r in mine] == [("cron", job.id, "completed")]
    assert not [r for r in again if r.tenant_id == a.id]
    assert len([r for batch in racing for r in batch if r.id == job.id]) == 1
    async with services.db.tenant(a.system) as conn:
        row = (await conn.execute(sa.text(
            "SELECT last_run_at, last_status, last_error, next_run_at FROM tenantgate.cron_jobs WHERE id = :id"),
            {"id": job.id})).one()  # fmt: skip
        runs = (await conn.execute(sa.text(
            "SELECT r.started_by, r.started_by_kind, s.channel FROM tenantgate.runs r JOIN tenantgate.sessions s"
            " ON s.tenant_id = r.tenant_id AND s.id = r.session_id"))).all()  # fmt: skip
        replies = (await conn.execute(sa.text(
            "SELECT content FROM tenantgate.messages WHERE role = 'assistant'"))).scalars().all()  # fmt: skip
    assert row.last_status == "completed"
    assert row.last_error is None
    assert row.next_run_at > datetime.now(UTC) + timedelta(minutes=55)
    assert [tuple(r) for r in runs] == [(a.owner_id, "user", "cron")] * 2  # the creator, for both runs
    assert replies == ["Weekly report is ready."] * 2
    async with services.db.tenant(b.system) as conn:
        untouched = (await conn.execute(sa.text(
            "SELECT last_run_at FROM tenantgate.cron_jobs WHERE id = :id"), {"id": other.id})).scalar_one()  # fmt: skip
        b_runs = await conn.scalar(sa.text("SELECT count(*) FROM tenantgate.runs"))
    assert (untouched, b_runs) == (None, 0)


async def test_a_due_heartbeat_runs_and_a_job_whose_creator_is_gone_fails_recorded(services: Services) -> None:
    tenant, owner = await _owner(services, "All quiet.")
    task = await services.heartbeat.add(owner, name="check", prompt="Anything new?", every_seconds=3600)
    await _make_due(services, "heartbeat_tasks", "next_due_at", task.id)
    job = await services.cron.add(owner, name="orphan", kind="every", schedule=3600, message="Hello")
    await _make_due(services, "cron_jobs", "next_run_at", job.id)
    async with services.db.admin() as conn:  # the creator leaves the tenant
        await conn.execute(sa.text("UPDATE tenantgate.principals SET disabled_at = now() WHERE id = :id"),
                           {"id": tenant.owner_id})  # fmt: skip

    ran = {r.id: r.status for r in await services.schedules.run_due() if r.tenant_id == tenant.id}

    assert ran == {task.id: "failed", job.id: "failed"}
    async with services.db.tenant(tenant.system) as conn:
        error = await conn.scalar(sa.text("SELECT last_error FROM tenantgate.cron_jobs WHERE id = :id"), {"id": job.id})
        runs = await conn.scalar(sa.text("SELECT count(*) FROM tenantgate.runs"))
    assert "no longer exists or is disabled" in error
    assert runs == 0  # no turn ran for a principal that is gone


async def test_a_due_heartbeat_runs_as_a_turn(services: Services) -> None:
    tenant, owner = await _owner(services, "All quiet.")
    task = await services.heartbeat.add(owner, name="check", prompt="Anything new?", every_seconds=3600)
    await _make_due(services, "heartbeat_tasks", "next_due_at", task.id)
    ran = [r for r in await services.schedules.run_due() if r.tenant_id == tenant.id]
    assert [(r.kind, r.status) for r in ran] == [("heartbeat", "completed")]
    async with services.db.tenant(tenant.system) as conn:
        query = sa.text("SELECT last_status, next_due_at FROM tenantgate.heartbeat_tasks WHERE id = :id")
        row = (await conn.execute(query, {"id": task.id})).one()
    assert row.last_status == "completed"
    assert row.next_due_at > datetime.now(UTC) + timedelta(minutes=55)
