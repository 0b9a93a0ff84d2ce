"""Restore's refusals change nothing: a taken name, a full plan, a bad version, another tenant, a missing role.

Also: the new version tables are isolated by row security at SQL level, and the CLI's
``tenantgate history`` commands restore as a platform operation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from tenantgate.errors import InvalidInput, QuotaExceeded
from tenantgate.installation import Services
from tenantgate.logs import configure_logging
from tenantgate.schedules import CronStore, HeartbeatStore, ScheduleLimits
from tests.conftest import DatabaseFixture, TenantFixture
from tests.state_helpers import actions, as_app, member_key
from tests.test_vault_cli import env, tg

__all__ = ["env"]  # the vault CLI tests' environment: the suite's database

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TIGHT = ScheduleLimits(max_cron_jobs=2, min_cron_interval_seconds=300, max_heartbeat_tasks=1,
                       min_heartbeat_interval_seconds=900)  # fmt: skip
SECRET = {"api_key": "sk-rules-" + uuid.uuid4().hex}


def skill(name: str, body: str = "Be brief.") -> str:
    return f"---\nname: {name}\ndescription: How to answer.\n---\n{body}\n"


@pytest.fixture(autouse=True)
def _logs_back_to_stderr() -> Iterator[None]:
    # The CLI points logging at the runner's captured stderr, which is closed afterwards.
    yield
    configure_logging("warning")


# --- a live item holds the name: 409, nothing changes -----------------------------------------


async def test_restoring_into_a_taken_name_is_a_conflict_for_every_named_kind(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    owner = tenant_a.headers()
    # cron
    job = {"name": "report", "kind": "every", "schedule": "3600", "message": "m"}
    old_job = (await client.post("/v1/cron-jobs", json=job, headers=owner)).json()["id"]
    await client.delete(f"/v1/cron-jobs/{old_job}", headers=owner)
    assert (await client.post("/v1/cron-jobs", json=job, headers=owner)).status_code == 201
    # heartbeat
    task = {"name": "inbox", "prompt": "Check.", "every_seconds": 3600}
    old_task = (await client.post("/v1/heartbeats", json=task, headers=owner)).json()["id"]
    await client.delete(f"/v1/heartbeats/{old_task}", headers=owner)
    assert (await client.post("/v1/heartbeats", json=task, headers=owner)).status_code == 201
    # skill (named by id: by name, the live one is found)
    await client.post("/v1/skills", json={"source": skill("tone", "Old.")}, headers=owner)
    old_skill = (await client.get("/v1/skills/tone", headers=owner)).json()["id"]
    await client.delete("/v1/skills/tone", headers=owner)
    await client.post("/v1/skills", json={"source": skill("tone", "New.")}, headers=owner)
    # credential: a deleted name is free for a new credential
    cred = {"name": "openai", "kind": "api_key", "secret": SECRET}
    old_cred = (await client.post("/v1/credentials", json=cred, headers=owner)).json()["id"]
    await client.delete(f"/v1/credentials/{old_cred}", headers=owner)
    assert (await client.post("/v1/credentials", json=cred, headers=owner)).status_code == 201

    for path in (f"/v1/cron-jobs/{old_job}", f"/v1/heartbeats/{old_task}", f"/v1/skills/{old_skill}",
                 f"/v1/credentials/{old_cred}"):  # fmt: skip
        refused = await client.post(f"{path}/restore", headers=owner)
        assert refused.status_code == 409, (path, refused.text)
        assert "first" in refused.json()["message"]
        assert "Nothing was restored" in refused.json()["message"]
        versions = (await client.get(f"{path}/versions", headers=owner)).json()
        assert versions[-1]["change"] in ("removed", "deleted")  # no new version was written
    assert len((await client.get("/v1/cron-jobs", headers=owner)).json()) == 1
    assert len((await client.get("/v1/credentials", headers=owner)).json()) == 1
    assert "New." in (await client.get("/v1/skills/tone", headers=owner)).json()["source"]
    assert [a for a in await actions(services, tenant_a, "") if a.endswith(".restored")] == []


# --- restoring a schedule counts against the cap ---------------------------------------------


async def test_restoring_schedules_counts_against_the_cap(services: Services, tenant_a: TenantFixture) -> None:
    ctx = tenant_a.system
    cron = CronStore(db=services.db, audit=services.audit, limits=TIGHT, clock=lambda: NOW)
    one = await cron.add(ctx, name="one", kind="every", schedule=3600, message="x")
    await cron.add(ctx, name="two", kind="every", schedule=3600, message="x")
    await cron.remove(ctx, one.id)
    await cron.add(ctx, name="three", kind="every", schedule=3600, message="x")
    with pytest.raises(QuotaExceeded) as refused:
        await cron.restore(ctx, one.id)
    assert refused.value.fields == {"limit": 2}
    assert [v.change for v in await cron.versions(ctx, one.id)] == ["created", "removed"]
    await cron.remove(ctx, "three")
    back = await cron.restore(ctx, one.id)
    assert (back.name, back.version, back.deleted_at) == ("one", 3, None)
    assert back.next_run_at is not None
    assert back.next_run_at > NOW

    beats = HeartbeatStore(db=services.db, audit=services.audit, limits=TIGHT, clock=lambda: NOW)
    first = await beats.add(ctx, name="a", prompt="p", every_seconds=900)
    await beats.remove(ctx, first.id)
    await beats.add(ctx, name="b", prompt="p", every_seconds=900)
    with pytest.raises(QuotaExceeded):
        await beats.restore(ctx, first.id)
    assert [t.name for t in await beats.tasks(ctx)] == ["b"]


# --- bad versions: 404 / 422, nothing changes ----------------------------------------------------


async def test_bad_version_numbers_are_refused_and_change_nothing(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    owner = tenant_a.headers()
    entry, _ = await services.memory.put(tenant_a.system, "note", "v1")
    await services.memory.put(tenant_a.system, "note", "v2")
    job = (
        await client.post("/v1/cron-jobs", json={"name": "j", "kind": "every", "schedule": "3600", "message": "m"},
                          headers=owner)
    ).json()  # fmt: skip
    await client.put("/v1/policy", json={"packages": [{"package": "basics"}]}, headers=owner)
    paths = [f"/v1/memory/{entry.id}", f"/v1/cron-jobs/{job['id']}", "/v1/policy"]
    for path in paths:
        assert (await client.post(f"{path}/restore", json={"version": 99}, headers=owner)).status_code == 404
        assert (await client.post(f"{path}/restore", json={"version": 0}, headers=owner)).status_code == 422
        assert (await client.post(f"{path}/restore", json={"version": "x"}, headers=owner)).status_code == 422
        assert (await client.post(f"{path}/restore", json={"nope": 1}, headers=owner)).status_code == 422
    # A live item without a version: nothing to restore by default.
    live = await client.post(f"/v1/memory/{entry.id}/restore", headers=owner)
    assert (live.status_code, live.json()["code"]) == (422, "invalid_input")
    assert "name the version" in live.json()["message"]
    # The policy has one version: there is no earlier one to go back to.
    assert (await client.post("/v1/policy/restore", headers=owner)).status_code == 422
    assert (await services.memory.get(tenant_a.system, entry.id)).version == 2
    assert len(await services.memory.versions(tenant_a.system, entry.id)) == 2
    assert (await client.get("/v1/policy", headers=owner)).json()["version"] == 1
    assert [v["version"] for v in (await client.get(f"/v1/cron-jobs/{job['id']}/versions", headers=owner)).json()] == [
        1
    ]


async def test_restores_are_gated_like_the_writes(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    owner = tenant_a.headers()
    member = {"Authorization": f"Bearer {await member_key(services, tenant_a)}"}
    await client.put("/v1/policy", json={"packages": [{"package": "basics"}]}, headers=owner)
    await client.put("/v1/policy", json={"packages": []}, headers=owner)
    job = (
        await client.post("/v1/cron-jobs", json={"name": "j", "kind": "every", "schedule": "3600", "message": "m"},
                          headers=owner)
    ).json()  # fmt: skip
    await client.delete(f"/v1/cron-jobs/{job['id']}", headers=owner)
    cid = (
        await client.post("/v1/credentials", json={"name": "k", "kind": "api_key", "secret": SECRET}, headers=owner)
    ).json()["id"]
    await client.delete(f"/v1/credentials/{cid}", headers=owner)
    for path in ("/v1/policy/restore", f"/v1/cron-jobs/{job['id']}/restore", f"/v1/credentials/{cid}/restore"):
        refused = await client.post(path, headers=member)
        assert (refused.status_code, refused.json()["code"]) == (403, "role_required"), path
    for path in ("/v1/cron-jobs", "/v1/heartbeats", "/v1/credentials", "/v1/skills"):
        assert (await client.get(path, params={"include_deleted": "true"}, headers=member)).status_code == 403
    assert (await client.get("/v1/policy/versions", headers=member)).status_code == 403
    assert (await client.get("/v1/policy", headers=owner)).json()["version"] == 2
    assert (await client.get("/v1/credentials", headers=owner)).json() == []


# --- other tenants: 404 over HTTP, nothing at SQL level -----------------------------------------


async def test_another_tenant_cannot_see_or_restore_versions(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    a = tenant_a.headers()
    entry, _ = await services.memory.put(tenant_a.system, "secret-plan", "A only")
    await services.memory.forget(tenant_a.system, entry.id)
    job = (
        await client.post("/v1/cron-jobs", json={"name": "j", "kind": "every", "schedule": "3600", "message": "m"},
                          headers=a)
    ).json()  # fmt: skip
    await client.delete(f"/v1/cron-jobs/{job['id']}", headers=a)
    task = (
        await client.post("/v1/heartbeats", json={"name": "h", "prompt": "p", "every_seconds": 3600}, headers=a)
    ).json()
    await client.delete(f"/v1/heartbeats/{task['id']}", headers=a)
    await client.post("/v1/skills", json={"source": skill("a-skill")}, headers=a)
    skill_id = (await client.get("/v1/skills/a-skill", headers=a)).json()["id"]
    await client.delete("/v1/skills/a-skill", headers=a)
    cid = (
        await client.post("/v1/credentials", json={"name": "k", "kind": "api_key", "secret": SECRET}, headers=a)
    ).json()["id"]
    await client.delete(f"/v1/credentials/{cid}", headers=a)

    b = tenant_b.headers()
    for path in (f"/v1/memory/{entry.id}", f"/v1/cron-jobs/{job['id']}", f"/v1/heartbeats/{task['id']}",
                 f"/v1/skills/{skill_id}", "/v1/skills/a-skill", f"/v1/credentials/{cid}"):  # fmt: skip
        assert (await client.get(f"{path}/versions", headers=b)).status_code == 404, path
        assert (await client.post(f"{path}/restore", headers=b)).status_code == 404, path
        assert (await client.post(f"{path}/restore", json={"version": 1}, headers=b)).status_code == 404, path
    for path in ("/v1/memory", "/v1/cron-jobs", "/v1/heartbeats", "/v1/skills", "/v1/credentials"):
        assert (await client.get(path, params={"include_deleted": "true"}, headers=b)).json() == []
    # A's items are still deleted, unrestored.
    assert (await client.get("/v1/cron-jobs", headers=a)).json() == []
    assert (await client.get("/v1/credentials", headers=a)).json() == []
    assert [a for a in await actions(services, tenant_a, "") if a.endswith(".restored")] == []


@pytest.mark.parametrize("table", ["heartbeat_task_versions", "credential_versions", "credentials"])
async def test_the_new_tables_are_isolated_at_sql_level(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture, table: str
) -> None:
    task = await services.heartbeat.add(tenant_a.system, name="h", prompt="p", every_seconds=3600)
    await services.heartbeat.remove(tenant_a.system, task.id)
    cred = await services.credentials.create(tenant_a.system, name="k", kind="api_key", secret=SECRET)
    await services.credentials.delete(tenant_a.system, cred.id)
    with as_app(test_db, tenant_a.id) as conn:
        mine = conn.execute(f"SELECT count(*) FROM tenantgate.{table}").fetchone()
    with as_app(test_db, tenant_b.id) as conn:
        theirs = conn.execute(f"SELECT count(*) FROM tenantgate.{table}").fetchone()
    assert mine is not None
    assert theirs is not None
    assert (mine[0] >= 1, theirs[0]) == (True, 0)
    with as_app(test_db, tenant_b.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "INSERT INTO tenantgate.heartbeat_task_versions (tenant_id, task_id, version, definition, change, "
            "changed_by) VALUES (%s, %s, 99, '{}', 'restored', %s)",
            [tenant_a.id, task.id, tenant_b.owner_id],
        )
    with as_app(test_db, tenant_a.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM tenantgate.credential_versions")  # history is INSERT/SELECT only


async def test_version_rows_never_hold_a_secret(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture
) -> None:
    cred = await services.credentials.create(tenant_a.system, name="k", kind="api_key", secret=SECRET,
                                             metadata={"team": "ops"})  # fmt: skip
    await services.credentials.replace_secret(tenant_a.system, cred.id, {"api_key": "sk-second-" + uuid.uuid4().hex})
    await services.credentials.delete(tenant_a.system, cred.id)
    await services.credentials.restore(tenant_a.system, cred.id)
    with as_app(test_db, tenant_a.id) as conn:
        rows = conn.execute("SELECT to_jsonb(v)::text FROM tenantgate.credential_versions v").fetchall()
        sealed = conn.execute("SELECT sealed::text FROM tenantgate.credentials WHERE id = %s", [cred.id]).fetchone()
    assert len(rows) == 4
    assert sealed is not None
    text = " ".join(r[0] for r in rows)
    assert SECRET["api_key"] not in text
    assert "sk-second-" not in text
    assert sealed[0] not in text
    assert '"sealed"' not in text


# --- the CLI ------------------------------------------------------------------------------------


async def test_history_from_the_cli_lists_and_restores(
    env: dict[str, str], services: Services, tenant_a: TenantFixture
) -> None:
    tenant = str(tenant_a.id)
    job = await services.cron.add(tenant_a.system, name="nightly", kind="every", schedule=3600, message="m")
    await services.cron.remove(tenant_a.system, job.id)
    deleted = await tg(env, "history", "deleted", "cron", "--tenant", tenant)
    assert str(job.id) in deleted.stdout
    assert "nightly" in deleted.stdout
    versions = await tg(env, "history", "versions", "cron", str(job.id), "--tenant", tenant)
    assert "removed" in versions.stdout
    restored = await tg(env, "history", "restore", "cron", str(job.id), "--tenant", tenant)
    assert "version 3" in restored.stdout
    assert [j.name for j in await services.cron.jobs(tenant_a.system)] == ["nightly"]
    assert "cron.restored" in await actions(services, tenant_a, "cron.")

    bad = await tg(env, "history", "restore", "cron", str(job.id), "--tenant", tenant, "--version", "42", ok=False)
    assert bad.returncode != 0
    assert "no version 42" in bad.stderr
    not_an_id = await tg(env, "history", "versions", "memory", "nope", "--tenant", tenant, ok=False)
    assert "by its id" in not_an_id.stderr
    assert (await services.cron.get(tenant_a.system, job.id)).version == 3


# --- what a restore cannot bring back ------------------------------------------------------------


async def test_a_one_time_job_whose_time_has_passed_cannot_come_back(
    services: Services, tenant_a: TenantFixture
) -> None:
    ctx = tenant_a.system
    then = CronStore(db=services.db, audit=services.audit, limits=TIGHT, clock=lambda: NOW)
    later = CronStore(db=services.db, audit=services.audit, limits=TIGHT, clock=lambda: NOW.replace(month=7))
    once = await then.add(ctx, name="launch", kind="at", schedule="2026-06-02T09:00:00+00:00", message="Launch!")
    await then.remove(ctx, once.id)
    with pytest.raises(InvalidInput, match="in the past"):
        await later.restore(ctx, once.id)
    assert [v.change for v in await later.versions(ctx, once.id)] == ["created", "removed"]
    back = await then.restore(ctx, once.id)  # before its time it can
    assert back.next_run_at == datetime(2026, 6, 2, 9, tzinfo=UTC)


async def test_saving_a_forgotten_key_revives_the_same_entry_with_its_history(
    services: Services, tenant_a: TenantFixture
) -> None:
    ctx = tenant_a.system
    first, _ = await services.memory.put(ctx, "supplier/acme", "Ships Tuesdays.")
    await services.memory.forget(ctx, "supplier/acme")
    again, change = await services.memory.put(ctx, "supplier/acme", "Ships Fridays.")
    assert (again.id, again.version, change) == (first.id, 3, "updated")
    assert [v.change for v in await services.memory.versions(ctx, first.id)] == ["created", "deleted", "updated"]
    older = await services.memory.restore(ctx, first.id, version=1)
    assert (older.content, older.version) == ("Ships Tuesdays.", 4)
