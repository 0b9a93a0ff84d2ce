"""Retention: per-tenant periods over platform defaults and compliance floors; the batched job."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import ValidationError

from tenantgate.audit import PLATFORM_CHAIN
from tenantgate.config import Settings
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import InvalidInput, RoleRequired
from tenantgate.gate import ComplianceMode
from tenantgate.installation import Services
from tenantgate.retention import (
    VERSION_CHILDREN,
    DataClass,
    RetentionBelowCompliance,
    RetentionDefaults,
    RetentionJob,
)
from tenantgate.worker import retention_loop
from tests.conftest import DatabaseFixture, TenantFixture, new_tenant
from tests.retention_data import count, plant, plant_messages, su
from tests.state_helpers import actions, as_app, member_key

FOREVER = dict.fromkeys((c.value for c in DataClass), None)


def job(services: Services, *, batch_size: int = 1000, ahead: timedelta = timedelta(0)) -> RetentionJob:
    """A job like the worker's, with its own batch size and a clock ``ahead`` of now."""
    return RetentionJob(
        db=services.db, audit=services.audit, periods=services.retention.periods, artifacts=services.artifacts,
        mode=services.settings.mode, batch_size=batch_size, clock=lambda: datetime.now(UTC) + ahead,
    )  # fmt: skip


# --- the catalog ---------------------------------------------------------------------------------

_FKS = """
    SELECT child.relname, parent.relname, a.attname
      FROM pg_constraint k
      JOIN pg_class child ON child.oid = k.conrelid
      JOIN pg_class parent ON parent.oid = k.confrelid
      JOIN pg_namespace n ON n.oid = child.relnamespace
      JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey) AND a.attname <> 'tenant_id'
     WHERE k.contype = 'f' AND n.nspname = 'tenantgate'
       AND EXISTS (SELECT 1 FROM pg_attribute d WHERE d.attrelid = parent.oid AND d.attname = 'deleted_at')
"""


def test_the_version_map_matches_the_catalogs_foreign_keys(test_db: DatabaseFixture) -> None:
    with su(test_db) as conn:
        referencing = {(str(c), str(p), str(col)) for c, p, col in conn.execute(_FKS).fetchall()}
        present = {str(r[0]) for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'tenantgate'")}
    mapped = {(child, parent, col) for parent, kids in VERSION_CHILDREN.items() for child, col in kids}
    # Every table referencing a soft-deletable parent is in the map (else hard deletes would fail)...
    assert referencing <= mapped
    # ... and every mapped table that exists references its parent by that column.
    assert {m for m in mapped if m[0] in present} == referencing
    # Version tables are named *_versions; none may hang off a parent the map does not know.
    versions = {t for t in present if t.endswith("_versions")}
    assert versions <= {child for child, _, _ in mapped}
    assert {"memory_versions", "cron_job_versions", "skill_versions"} <= versions


# --- periods -------------------------------------------------------------------------------------


async def test_defaults_overrides_and_reset(services: Services, tenant_a: TenantFixture) -> None:
    periods = services.retention.periods
    before = await periods.get(tenant_a.system)
    assert {c.value: before.days(c) for c in DataClass} == {
        "run_events": 90, "messages": 365, "artifacts": 90, "audit_payloads": 400, "soft_deleted": 30,
    }  # fmt: skip
    assert all(c.source == "default" for c in before.classes.values())
    after = await periods.set(tenant_a.system, {"messages": 30, "artifacts": None})
    assert (after.days(DataClass.MESSAGES), after.classes[DataClass.MESSAGES].source) == (30, "tenant")
    assert after.days(DataClass.ARTIFACTS) is None  # forever
    reset = await periods.set(tenant_a.system, {"messages": "default"})
    assert (reset.days(DataClass.MESSAGES), reset.classes[DataClass.MESSAGES].source) == (365, "default")
    assert reset.days(DataClass.ARTIFACTS) is None
    assert await actions(services, tenant_a, "retention.") == ["retention.set", "retention.set"]


@pytest.mark.parametrize(
    "changes", [{}, {"messages": 0}, {"messages": 36_501}, {"messages": "30"}, {"messages": True}, {"chats": 5}]
)
async def test_bad_periods_are_refused_and_change_nothing(
    services: Services, tenant_a: TenantFixture, changes: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput):
        await services.retention.periods.set(tenant_a.system, changes)
    assert all(c.source == "default" for c in (await services.retention.periods.get(tenant_a.system)).classes.values())


async def test_hipaa_keeps_audit_payloads_six_years(services: Services, tenant_a: TenantFixture) -> None:
    await services.policies.set_compliance(tenant_a.id, ComplianceMode.HIPAA)
    periods = services.retention.periods
    resolved = await periods.get(tenant_a.system)
    audit = resolved.classes[DataClass.AUDIT_PAYLOADS]
    assert (audit.days, audit.source, audit.floor_days, audit.default_days) == (2190, "compliance", 2190, 400)
    with pytest.raises(RetentionBelowCompliance) as refused:
        await periods.set(tenant_a.system, {"audit_payloads": 365, "messages": 10})
    assert refused.value.fields["floor_days"] == 2190
    assert (await periods.get(tenant_a.system)).days(DataClass.MESSAGES) == 365  # nothing changed
    kept = await periods.set(tenant_a.system, {"audit_payloads": None})  # forever is above any floor
    assert kept.days(DataClass.AUDIT_PAYLOADS) is None


async def test_http_read_by_members_set_by_owners(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    member = await member_key(services, tenant_a)
    got = await client.get("/v1/retention", headers=tenant_a.headers(member))
    assert got.status_code == 200
    assert got.json()["classes"]["messages"] == {
        "days": 365, "source": "default", "default_days": 365, "override": False, "floor_days": None,
    }  # fmt: skip
    refused = await client.put("/v1/retention", json={"messages": 7}, headers=tenant_a.headers(member))
    assert (refused.status_code, refused.json()["code"]) == (403, "role_required")
    put = await client.put("/v1/retention", json={"messages": 7, "run_events": None}, headers=tenant_a.headers())
    assert put.status_code == 200
    assert put.json()["classes"]["messages"]["days"] == 7
    assert put.json()["classes"]["run_events"]["days"] is None
    for bad in ({"messages": 0}, {"messages": "soon"}, {"messages": True}, {"nope": 3}, [1]):
        response = await client.put("/v1/retention", json=bad, headers=tenant_a.headers())
        assert response.status_code == 422, bad
    assert (await client.get("/v1/retention", headers=tenant_a.headers())).json()["classes"]["messages"]["days"] == 7
    # Tenant B sees its own defaults, not A's override.
    other = await client.get("/v1/retention", headers=tenant_b.headers())
    assert other.json()["classes"]["messages"]["source"] == "default"


async def test_retention_settings_rows_are_tenant_scoped_in_sql(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    await services.retention.periods.set(tenant_a.system, {"messages": 5})
    with as_app(test_db, tenant_b.id) as conn:
        assert conn.execute("SELECT count(*) FROM tenantgate.retention_settings").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # RLS WITH CHECK
            conn.execute(
                "INSERT INTO tenantgate.retention_settings (tenant_id, data_class, days, updated_by)"
                " VALUES (%s, 'messages', 1, %s)",
                [tenant_a.id, tenant_a.owner_id],
            )
    with as_app(test_db, tenant_a.id) as conn:
        assert conn.execute("SELECT count(*) FROM tenantgate.retention_settings").fetchone() == (1,)


async def test_member_cannot_set_through_the_service(services: Services, tenant_a: TenantFixture) -> None:
    member = await services.principals.create(
        tenant_a.system, name="m", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
    )
    ctx = TenantContext(
        tenant_id=tenant_a.id, principal_id=member.id, kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER}),
        mode=tenant_a.system.mode, request_id="t",
    )  # fmt: skip
    with pytest.raises(RoleRequired):
        await services.retention.periods.set(ctx, {"messages": 3})
    assert (await services.retention.periods.get(ctx)).days(DataClass.MESSAGES) == 365


# --- the job -------------------------------------------------------------------------------------


async def test_the_job_removes_aged_data_of_every_class_and_keeps_fresh_and_other_tenants(
    services: Services, test_db: DatabaseFixture, artifacts_root: Path
) -> None:
    a = await new_tenant(services, "ra")
    b = await new_tenant(services, "rb")
    planted_a = await plant(services, test_db, artifacts_root, a, aged=5)
    planted_b = await plant(services, test_db, artifacts_root, b, aged=5)
    await services.retention.periods.set(a.system, {"audit_payloads": 1})
    await services.retention.periods.set(b.system, FOREVER)
    await services.audit.drain()
    fresh_memory, _ = await services.memory.put(a.system, "kept", "still here")
    b_rows = {t: count(test_db, t, b.id) for t in ("messages", "run_events", "artifacts", "cron_jobs")}
    b_payloads = count(test_db, "audit_events", b.id, "erased_at IS NULL")

    # Two days ahead: A's audit payloads (1 day) age; every fresh row stays inside its period.
    report = await job(services, batch_size=2, ahead=timedelta(days=2)).run()

    assert not report.skipped
    assert not report.failed
    by_tenant = {t.tenant_id: t for t in report.tenants}
    counts = by_tenant[a.id].counts()
    for name in ("messages", "run_events", "artifacts", "soft_deleted"):
        assert counts[name] == planted_a.aged[name], name
    assert counts["audit_payloads"] > 0
    batches = {c.data_class: c.batches for c in by_tenant[a.id].classes}
    assert batches[DataClass.MESSAGES] == 3  # 5 rows, 2 per transaction
    assert by_tenant[b.id].total == 0
    # A: aged rows went, fresh ones stayed.
    assert count(test_db, "messages", a.id) == count(test_db, "run_events", a.id) == 2
    assert count(test_db, "artifacts", a.id) == 1
    assert planted_a.aged_artifact_file is not None
    assert not planted_a.aged_artifact_file.exists()
    _, chunks = await services.artifacts.open(a.system, planted_a.fresh_artifact)  # type: ignore[arg-type]
    assert b"".join(chunks).startswith(b"new page")
    assert count(test_db, "cron_jobs", a.id, f"id = '{planted_a.aged_cron}'") == 0
    assert count(test_db, "cron_job_versions", a.id, f"job_id = '{planted_a.aged_cron}'") == 0
    assert count(test_db, "cron_jobs", a.id, f"id = '{planted_a.fresh_cron}'") == 1  # deleted, but recently
    assert (await services.memory.get(a.system, fresh_memory.id)).content == "still here"
    # Audit payloads erased, chains intact, the run recorded on A's chain and the platform's.
    assert count(test_db, "audit_events", a.id, "erased_at IS NOT NULL AND payload IS NULL") == counts["audit_payloads"]
    assert (await services.audit.verify(a.id)).ok
    assert (await services.audit.verify(PLATFORM_CHAIN)).ok
    applied = list(await services.audit.page(a.system, action="retention.applied"))
    assert applied[-1].payload is not None
    assert applied[-1].payload["counts"] == counts
    # B (keep forever) is untouched.
    assert {t: count(test_db, t, b.id) for t in b_rows} == b_rows
    assert count(test_db, "audit_events", b.id, "erased_at IS NULL") >= b_payloads
    assert planted_b.aged_artifact_file is not None
    assert planted_b.aged_artifact_file.is_file()
    assert await actions(services, b, "retention.applied") == []


async def test_a_dry_run_counts_what_would_go_and_changes_nothing(
    services: Services, test_db: DatabaseFixture, artifacts_root: Path
) -> None:
    t = await new_tenant(services, "dry")
    planted = await plant(services, test_db, artifacts_root, t, aged=4)
    tables = ("messages", "run_events", "artifacts", "cron_jobs", "cron_job_versions")
    before = {name: count(test_db, name, t.id) for name in tables}
    report = await services.retention.run(tenant_id=t.id, dry_run=True)
    (tenant,) = report.tenants
    assert report.dry_run
    for c in tenant.classes:
        if c.data_class is not DataClass.AUDIT_PAYLOADS:
            assert c.count == planted.aged[c.data_class.value], c
    oldest = {c.data_class: c.oldest for c in tenant.classes}
    assert oldest[DataClass.MESSAGES] is not None
    assert oldest[DataClass.MESSAGES] < datetime.now(UTC) - timedelta(days=399)
    assert {name: count(test_db, name, t.id) for name in tables} == before
    assert planted.aged_artifact_file is not None
    assert planted.aged_artifact_file.is_file()
    assert await actions(services, t, "retention.applied") == []


async def test_one_runner_at_a_time(services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture) -> None:
    plant_messages(test_db, tenant_a, aged=1, fresh=0)
    first, second = job(services), job(services)
    async with first.exclusive() as acquired:
        assert acquired
        skipped = await second.run(tenant_id=tenant_a.id)
        assert skipped.skipped
        assert skipped.tenants == ()
        assert count(test_db, "messages", tenant_a.id) == 1
    ran = await second.run(tenant_id=tenant_a.id)
    assert not ran.skipped
    assert count(test_db, "messages", tenant_a.id) == 0


async def test_an_unknown_tenant_is_refused(services: Services) -> None:
    with pytest.raises(InvalidInput):
        await services.retention.run(tenant_id=uuid.uuid4(), dry_run=True)


async def test_the_worker_loop_runs_retention(services: Services, test_db: DatabaseFixture) -> None:
    t = await new_tenant(services, "loop")
    plant_messages(test_db, t, aged=2, fresh=1)
    await retention_loop(services, 0)  # disabled: returns at once, removes nothing
    assert count(test_db, "messages", t.id) == 3
    # A long period: the first round runs at once, then the loop sleeps (and is cancelled asleep).
    loop = asyncio.create_task(retention_loop(services, 3600))
    try:
        for _ in range(400):
            if await actions(services, t, "retention.applied"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # the round's closing platform event
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert count(test_db, "messages", t.id) == 1
    assert await actions(services, t, "retention.applied") == ["retention.applied"]


async def test_a_table_added_later_with_deleted_at_is_covered(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture
) -> None:
    admin = test_db.roles.admin
    with psycopg.connect(test_db.urls.owner, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE tenantgate.later_things (tenant_id uuid NOT NULL, note text, deleted_at timestamptz)"
        )
        try:
            conn.execute("ALTER TABLE tenantgate.later_things ENABLE ROW LEVEL SECURITY")
            conn.execute("ALTER TABLE tenantgate.later_things FORCE ROW LEVEL SECURITY")
            conn.execute(
                "CREATE POLICY tenant_isolation ON tenantgate.later_things"
                " USING (tenant_id = nullif(current_setting('tenantgate.tenant_id', true), '')::uuid)"
                " WITH CHECK (tenant_id = nullif(current_setting('tenantgate.tenant_id', true), '')::uuid)"
            )
            conn.execute(f'GRANT ALL ON tenantgate.later_things TO "{admin}"')
            with su(test_db) as root:
                root.execute(
                    "INSERT INTO tenantgate.later_things VALUES"
                    " (%(t)s, 'aged', now() - interval '31 days'), (%(t)s, 'recent', now() - interval '1 day'),"
                    " (%(t)s, 'live', NULL), (%(other)s, 'aged elsewhere', now() - interval '31 days')",
                    {"t": tenant_a.id, "other": uuid.uuid4()},
                )
                (dry,) = (await services.retention.run(tenant_id=tenant_a.id, dry_run=True)).tenants
                soft = {c.data_class: c.count for c in dry.classes}[DataClass.SOFT_DELETED]
                assert soft == 1
                await services.retention.run(tenant_id=tenant_a.id)
                notes = sorted(r[0] for r in root.execute("SELECT note FROM tenantgate.later_things"))
            assert notes == ["aged elsewhere", "live", "recent"]
        finally:
            conn.execute("DROP TABLE tenantgate.later_things")


async def test_a_failing_class_is_reported_keeps_its_rows_and_the_others_still_run(
    services: Services, test_db: DatabaseFixture, artifacts_root: Path
) -> None:
    t = await new_tenant(services, "fail")
    planted = await plant(services, test_db, artifacts_root, t, aged=2)
    admin = test_db.roles.admin
    with psycopg.connect(test_db.urls.owner, autocommit=True) as conn:
        # A reference the version map does not know: hard-deleting the aged cron job must fail.
        conn.execute(
            "CREATE TABLE tenantgate.unmapped_refs (tenant_id uuid NOT NULL, job_id uuid NOT NULL,"
            " FOREIGN KEY (tenant_id, job_id) REFERENCES tenantgate.cron_jobs (tenant_id, id))"
        )
        try:
            conn.execute(f'GRANT ALL ON tenantgate.unmapped_refs TO "{admin}"')
            with su(test_db) as root:
                root.execute("INSERT INTO tenantgate.unmapped_refs VALUES (%s, %s)", [t.id, planted.aged_cron])
            report = await services.retention.run(tenant_id=t.id)
        finally:
            conn.execute("DROP TABLE tenantgate.unmapped_refs")
    assert report.failed
    (tenant,) = report.tenants
    by_class = {c.data_class: c for c in tenant.classes}
    assert by_class[DataClass.SOFT_DELETED].error == "ForeignKeyViolation"
    assert by_class[DataClass.SOFT_DELETED].count == 0
    assert count(test_db, "cron_jobs", t.id, f"id = '{planted.aged_cron}'") == 1  # kept
    assert by_class[DataClass.MESSAGES].count == 2  # the other classes ran
    assert count(test_db, "messages", t.id) == 2


def test_platform_defaults_from_settings() -> None:
    settings = Settings(_env_file=None, retention_messages_days="forever", retention_run_events_days="7")  # type: ignore[call-arg]
    defaults = RetentionDefaults.from_settings(settings)
    assert defaults.days[DataClass.MESSAGES] is None
    assert defaults.days[DataClass.RUN_EVENTS] == 7
    assert defaults.days[DataClass.SOFT_DELETED] == 30
    with pytest.raises(ValidationError):
        Settings(_env_file=None, retention_artifacts_days="0")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, retention_every_s=-1)  # type: ignore[call-arg]


async def test_the_platform_reads_and_sets_a_tenants_retention(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    _, key = await services.platform_keys.create(f"retention-{uuid.uuid4().hex[:6]}")
    op = {"Authorization": f"Bearer {key}"}
    url = f"/v1/platform/tenants/{tenant_a.id}/retention"
    assert (await client.get(url, headers=tenant_a.headers())).status_code == 401  # a tenant key is not a platform key
    put = await client.put(url, json={"soft_deleted": 7}, headers=op)
    assert put.status_code == 200
    assert put.json()["classes"]["soft_deleted"] == {
        "days": 7, "source": "tenant", "default_days": 30, "override": True, "floor_days": None,
    }  # fmt: skip
    assert (await client.get(url, headers=op)).json()["classes"]["soft_deleted"]["days"] == 7
    assert (await services.retention.periods.get(tenant_b.system)).days(DataClass.SOFT_DELETED) == 30
    assert await actions(services, tenant_a, "retention.set") == ["retention.set"]
    missing = await client.get(f"/v1/platform/tenants/{uuid.uuid4()}/retention", headers=op)
    assert missing.status_code == 404
    bad = await client.put(url, json={"soft_deleted": -1}, headers=op)
    assert bad.status_code == 422
