"""Aged and fresh data of every retention class for a tenant, written as the superuser (backdated)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tenantgate.installation import Services
from tests.conftest import DatabaseFixture, TenantFixture

OLD = "now() - interval '400 days'"  # past every default period


@dataclass
class Planted:
    tenant: TenantFixture
    aged: dict[str, int] = field(default_factory=dict)  # class -> rows that should go
    aged_artifact: uuid.UUID | None = None
    aged_artifact_file: Path | None = None
    fresh_artifact: uuid.UUID | None = None
    aged_cron: uuid.UUID | None = None
    fresh_cron: uuid.UUID | None = None


def su(test_db: DatabaseFixture) -> psycopg.Connection:
    return psycopg.connect(test_db.superuser, autocommit=True)


def count(test_db: DatabaseFixture, table: str, tenant_id: uuid.UUID, where: str = "true") -> int:
    with su(test_db) as conn:
        row = conn.execute(f"SELECT count(*) FROM tenantgate.{table} WHERE tenant_id = %s AND {where}", [tenant_id])
        return int(row.fetchone()[0])  # type: ignore[index]


def plant_messages(test_db: DatabaseFixture, tenant: TenantFixture, *, aged: int, fresh: int) -> None:
    """A session and a run with ``aged`` + ``fresh`` messages and as many run events."""
    session, run = uuid.uuid4(), uuid.uuid4()
    with su(test_db) as conn:
        conn.execute(
            "INSERT INTO tenantgate.sessions (tenant_id, id, created_by) VALUES (%s, %s, %s)",
            [tenant.id, session, tenant.owner_id],
        )
        conn.execute(
            "INSERT INTO tenantgate.runs"
            " (tenant_id, id, session_id, started_by, started_by_kind, execution_id, planner)"
            " VALUES (%s, %s, %s, %s, 'user', %s, 'scripted')",
            [tenant.id, run, session, tenant.owner_id, uuid.uuid4()],
        )
        for i in range(aged + fresh):
            when = OLD if i < aged else "now()"
            conn.execute(
                "INSERT INTO tenantgate.messages (tenant_id, id, session_id, run_id, role, content, created_at)"
                f" VALUES (%s, %s, %s, %s, 'user', 'hello', {when})",
                [tenant.id, uuid.uuid4(), session, run],
            )
            conn.execute(
                "INSERT INTO tenantgate.run_events (tenant_id, run_id, seq, kind, data, occurred_at)"
                f" VALUES (%s, %s, %s, 'step', '{{}}', {when})",
                [tenant.id, run, i + 1],
            )


async def plant(
    services: Services, test_db: DatabaseFixture, artifacts_root: Path, tenant: TenantFixture, *, aged: int = 3
) -> Planted:
    """``aged`` aged messages and run events (plus 2 fresh), 1 aged and 1 fresh artifact, an aged
    soft-deleted cron job (with its versions), a freshly deleted one, a live one."""
    planted = Planted(tenant)
    plant_messages(test_db, tenant, aged=aged, fresh=2)
    planted.aged["messages"] = planted.aged["run_events"] = aged
    old = await services.artifacts.create(tenant.system, b"old page " * 10, kind="web_page")
    new = await services.artifacts.create(tenant.system, b"new page " * 10, kind="web_page")
    planted.aged_artifact, planted.fresh_artifact = old.id, new.id
    with su(test_db) as conn:
        conn.execute(
            f"UPDATE tenantgate.artifacts SET created_at = {OLD} WHERE tenant_id = %s AND id = %s",
            [tenant.id, old.id],
        )
        key = conn.execute("SELECT storage_key FROM tenantgate.artifacts WHERE id = %s", [old.id]).fetchone()
    assert key is not None
    planted.aged_artifact_file = artifacts_root / key[0]
    assert planted.aged_artifact_file.is_file()
    planted.aged["artifacts"] = 1
    gone = await services.cron.add(tenant.system, name="gone", kind="every", schedule=3600, message="ping")
    recent = await services.cron.add(tenant.system, name="recent", kind="every", schedule=3600, message="ping")
    await services.cron.add(tenant.system, name="live", kind="every", schedule=3600, message="ping")
    await services.cron.remove(tenant.system, gone.id)
    await services.cron.remove(tenant.system, recent.id)
    planted.aged_cron, planted.fresh_cron = gone.id, recent.id
    with su(test_db) as conn:
        conn.execute(
            "UPDATE tenantgate.cron_jobs SET deleted_at = now() - interval '40 days' WHERE tenant_id = %s AND id = %s",
            [tenant.id, gone.id],
        )
    versions = count(test_db, "cron_job_versions", tenant.id, f"job_id = '{gone.id}'")
    assert versions >= 2  # created, deleted
    planted.aged["soft_deleted"] = 1 + versions
    return planted
