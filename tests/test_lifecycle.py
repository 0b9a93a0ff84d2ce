"""Soft delete, versions and restore, one round trip per kind, over HTTP as a tenant's owner uses them.

Each kind: delete -> hidden from lists, reads (and tools) -> found with include_deleted ->
versions listed oldest first -> restore -> visible again, audited as ``<kind>.restored``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantgate.context import TenantContext
from tenantgate.errors import NotFound
from tenantgate.gate import ProposedCall, Verdict
from tenantgate.installation import Installation, Services
from tenantgate.tools import Outcome
from tests.conftest import TenantFixture, new_tenant
from tests.state_helpers import actions

SECRET = {"api_key": "sk-lifecycle-" + uuid.uuid4().hex}


def skill(name: str, body: str = "Be brief.") -> str:
    return f"---\nname: {name}\ndescription: How to answer.\n---\n{body}\n"


async def restored_event(services: Services, tenant: TenantFixture, action: str) -> dict[str, Any]:
    await services.audit.drain()
    events = [r for r in await services.audit.page(tenant.system, limit=500) if r.action == action]
    assert events, f"no {action} event"
    return dict(events[-1].payload or {})


# --- memory -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def real(installation: Installation) -> AsyncIterator[Services]:
    """Services with the real built-in registry, so the agent's memory tools exist."""
    services = Services.build(installation)
    await services.policy_cache.start()
    yield services
    await services.stop()


async def agent(real: Services, tenant: TenantFixture) -> TenantContext:
    tools = ["memory_search@v1", "memory_get@v1", "memory_put@v1", "memory_forget@v1"]
    await real.policies.set_policy(
        tenant.system, {"packages": [{"package": "memory"}], "grants": [{"id": "memory", "tools": tools}]}
    )
    owner = await real.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    return owner.for_ai_execution(uuid.uuid4())


async def call(real: Services, ctx: TenantContext, tool: str, **arguments: Any) -> Any:
    outcome = await real.boundary.call(ctx, ProposedCall(tool, arguments))
    assert outcome.decision.verdict is Verdict.ALLOW, outcome.decision.reason
    assert outcome.result is not None
    return outcome.result


async def test_what_the_agent_forgets_is_hidden_then_restored_through_the_api(
    real: Services, client: httpx.AsyncClient
) -> None:
    tenant = await new_tenant(real, "forget")
    ctx = await agent(real, tenant)
    saved = (await call(real, ctx, "memory_put@v1", key="customer/acme", content="Acme pays net 30.")).output
    await call(real, ctx, "memory_put@v1", key="customer/acme", content="Acme pays net 45.")
    forgot = await call(real, ctx, "memory_forget@v1", key="customer/acme")
    assert forgot.outcome is Outcome.SUCCEEDED, forgot.error
    assert forgot.output["version"] == 3

    # Gone for the agent and for the API...
    again = await call(real, ctx, "memory_get@v1", key="customer/acme")
    assert again.outcome is Outcome.FAILED
    assert (await call(real, ctx, "memory_search@v1", query="acme")).output["results"] == []
    owner = tenant.headers()
    assert (await client.get("/v1/memory", headers=owner)).json() == []
    assert (await client.get(f"/v1/memory/{saved['id']}", headers=owner)).status_code == 404
    # ...but not destroyed: an owner finds it, with its versions oldest first.
    listed = (await client.get("/v1/memory", params={"include_deleted": "true"}, headers=owner)).json()
    assert [(e["key"], e["deleted_at"] is not None) for e in listed] == [("customer/acme", True)]
    versions = (await client.get(f"/v1/memory/{saved['id']}/versions", headers=owner)).json()
    assert [(v["version"], v["change"], v["content"]) for v in versions] == [
        (1, "created", "Acme pays net 30."), (2, "updated", "Acme pays net 45."), (3, "deleted", "Acme pays net 45."),
    ]  # fmt: skip

    restored = await client.post(f"/v1/memory/{saved['id']}/restore", headers=owner)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["version"], restored.json()["content"], restored.json()["deleted_at"]) == (
        4, "Acme pays net 45.", None,
    )  # fmt: skip
    found = await call(real, ctx, "memory_search@v1", query="acme")
    assert [r["key"] for r in found.output["results"]] == ["customer/acme"]
    assert [e["key"] for e in (await client.get("/v1/memory", headers=owner)).json()] == ["customer/acme"]
    assert await actions(real, tenant, "memory.") == [
        "memory.created", "memory.updated", "memory.deleted", "memory.restored",
    ]  # fmt: skip
    assert (await restored_event(real, tenant, "memory.restored"))["from_version"] == 2

    # A chosen older version of a live entry: a new version with that content.
    older = await client.post(f"/v1/memory/{saved['id']}/restore", json={"version": 1}, headers=owner)
    assert (older.json()["version"], older.json()["content"]) == (5, "Acme pays net 30.")
    event = await restored_event(real, tenant, "memory.restored")
    assert (event["from_version"], event["to_version"]) == (1, 5)


async def test_memory_delete_over_http_needs_a_manager_and_include_deleted_too(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    from tests.state_helpers import member_key

    entry, _ = await services.memory.put(tenant_a.system, "note", "Keep this.")
    member = {"Authorization": f"Bearer {await member_key(services, tenant_a)}"}
    assert (await client.delete(f"/v1/memory/{entry.id}", headers=member)).status_code == 403
    assert (await client.get("/v1/memory", params={"include_deleted": "true"}, headers=member)).status_code == 403
    deleted = await client.delete(f"/v1/memory/{entry.id}", headers=tenant_a.headers())
    assert deleted.status_code == 200
    assert (await client.post(f"/v1/memory/{entry.id}/restore", headers=member)).status_code == 403
    assert (await client.get("/v1/memory", headers=member)).json() == []  # still deleted
    assert (await client.delete(f"/v1/memory/{entry.id}", headers=tenant_a.headers())).status_code == 404


# --- skills -----------------------------------------------------------------------------------


async def test_skill_round_trip_by_name(services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    owner = tenant_a.headers()
    await client.post("/v1/skills", json={"source": skill("refunds", "Refund within 14 days.")}, headers=owner)
    await client.post("/v1/skills", json={"source": skill("refunds", "Refund within 30 days.")}, headers=owner)
    assert "Refund within 30 days." in await services.skills.prompt_layer(tenant_a.system)
    assert (await client.delete("/v1/skills/refunds", headers=owner)).status_code == 200

    assert (await client.get("/v1/skills", headers=owner)).json() == []
    assert (await client.get("/v1/skills/refunds", headers=owner)).status_code == 404
    assert await services.skills.prompt_layer(tenant_a.system) == ""
    listed = (await client.get("/v1/skills", params={"include_deleted": "true"}, headers=owner)).json()
    assert [(s["name"], s["deleted_at"] is not None) for s in listed] == [("refunds", True)]
    versions = (await client.get("/v1/skills/refunds/versions", headers=owner)).json()
    assert [(v["version"], v["change"]) for v in versions] == [(1, "authored"), (2, "updated"), (3, "removed")]

    restored = await client.post("/v1/skills/refunds/restore", headers=owner)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["version"], restored.json()["enabled"]) == (4, True)
    assert "Refund within 30 days." in await services.skills.prompt_layer(tenant_a.system)
    event = await restored_event(services, tenant_a, "skill.restored")
    assert (event["from_version"], event["to_version"]) == (2, 4)

    chosen = await client.post("/v1/skills/refunds/restore", json={"version": 1}, headers=owner)
    assert chosen.json()["version"] == 5
    assert "Refund within 14 days." in (await client.get("/v1/skills/refunds", headers=owner)).json()["source"]
    by_id = await client.get(f"/v1/skills/{listed[0]['id']}/versions", headers=owner)
    assert [v["change"] for v in by_id.json()][-2:] == ["restored", "restored"]


# --- cron jobs and heartbeat tasks ----------------------------------------------------------


async def test_a_restored_cron_job_is_scheduled_again_and_runs(services: Services, client: httpx.AsyncClient) -> None:
    tenant = await new_tenant(services, "cronrestore")
    await services.policies.set_policy(
        tenant.system, {"ai": {"planner": {"provider": "scripted", "script": [{"reply": "Report written."}]}}}
    )
    owner = tenant.headers()
    job = (
        await client.post("/v1/cron-jobs", json={"name": "report", "kind": "every", "schedule": "3600",
                                                 "message": "Write the report"}, headers=owner)
    ).json()  # fmt: skip
    assert (await client.delete(f"/v1/cron-jobs/{job['id']}", headers=owner)).status_code == 200
    assert (await client.get("/v1/cron-jobs", headers=owner)).json() == []
    assert (await client.get(f"/v1/cron-jobs/{job['id']}", headers=owner)).status_code == 404
    removed = (await client.get("/v1/cron-jobs", params={"include_deleted": "true"}, headers=owner)).json()
    assert [(j["name"], j["next_run_at"], j["deleted_at"] is not None) for j in removed] == [("report", None, True)]
    # A removed job is never run, even if its row still says it is due.
    await _make_due(services, job["id"], when="now() - interval '1 second'", only_if_deleted=True)
    assert not [r for r in await services.schedules.run_due() if r.id == uuid.UUID(job["id"])]

    restored = await client.post(f"/v1/cron-jobs/{job['id']}/restore", headers=owner)
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert (body["version"], body["deleted_at"], body["enabled"]) == (3, None, True)
    assert body["next_run_at"] is not None  # scheduled again, from now
    versions = (await client.get(f"/v1/cron-jobs/{job['id']}/versions", headers=owner)).json()
    assert [(v["version"], v["change"]) for v in versions] == [(1, "created"), (2, "removed"), (3, "restored")]
    event = await restored_event(services, tenant, "cron.restored")
    assert (event["from_version"], event["to_version"]) == (1, 3)

    await _make_due(services, job["id"], when="now() - interval '1 second'")
    ran = [r for r in await services.schedules.run_due() if r.id == uuid.UUID(job["id"])]
    assert [r.status for r in ran] == ["completed"]


async def _make_due(services: Services, job_id: str, *, when: str, only_if_deleted: bool = False) -> None:
    extra = " AND deleted_at IS NOT NULL" if only_if_deleted else ""
    async with services.db.admin() as conn:
        result = await conn.execute(
            sa.text(f"UPDATE tenantgate.cron_jobs SET next_run_at = {when} WHERE id = :id{extra}"), {"id": job_id}
        )
        assert result.rowcount == 1


async def test_heartbeat_versions_every_change_and_restores(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    owner = tenant_a.headers()
    task = (
        await client.post("/v1/heartbeats", json={"name": "inbox", "prompt": "Check the inbox.",
                                                  "every_seconds": 3600}, headers=owner)
    ).json()  # fmt: skip
    tid = task["id"]
    await client.patch(f"/v1/heartbeats/{tid}", json={"prompt": "Check the inbox and the queue."}, headers=owner)
    await client.patch(f"/v1/heartbeats/{tid}", json={"enabled": False}, headers=owner)
    assert (await client.delete(f"/v1/heartbeats/{tid}", headers=owner)).json()["version"] == 4
    assert (await client.get("/v1/heartbeats", headers=owner)).json() == []
    assert (await client.get(f"/v1/heartbeats/{tid}", headers=owner)).status_code == 404
    versions = (await client.get(f"/v1/heartbeats/{tid}/versions", headers=owner)).json()
    assert [(v["version"], v["change"], v["definition"]["enabled"]) for v in versions] == [
        (1, "created", True), (2, "updated", True), (3, "paused", False), (4, "removed", False),
    ]  # fmt: skip

    # Default: the latest version before the removal (paused), so it comes back paused.
    paused = (await client.post(f"/v1/heartbeats/{tid}/restore", headers=owner)).json()
    assert (paused["version"], paused["enabled"], paused["next_due_at"], paused["deleted_at"]) == (5, False, None, None)
    # A chosen version of the live task: the first, enabled and due again.
    first = (await client.post(f"/v1/heartbeats/{tid}/restore", json={"version": 1}, headers=owner)).json()
    assert (first["version"], first["prompt"], first["enabled"]) == (6, "Check the inbox.", True)
    assert first["next_due_at"] is not None
    assert [t["id"] for t in (await client.get("/v1/heartbeats", headers=owner)).json()] == [tid]
    assert await actions(services, tenant_a, "heartbeat.") == [
        "heartbeat.created", "heartbeat.updated", "heartbeat.paused", "heartbeat.removed",
        "heartbeat.restored", "heartbeat.restored",
    ]  # fmt: skip


# --- policy -----------------------------------------------------------------------------------


async def test_policy_versions_and_restore_to_a_chosen_version(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    owner = tenant_a.headers()
    first = {"packages": [{"package": "basics"}]}
    second = {"packages": [{"package": "basics"}], "grants": [{"id": "g", "tools": ["echo@v1"]}]}
    assert (await client.put("/v1/policy", json=first, headers=owner)).status_code == 200
    assert (await client.put("/v1/policy", json=second, headers=owner)).status_code == 200
    versions = (await client.get("/v1/policy/versions", headers=owner)).json()
    assert [(v["version"], [g["id"] for g in v["document"]["grants"]]) for v in versions] == [(1, []), (2, ["g"])]

    back = await client.post("/v1/policy/restore", json={"version": 1}, headers=owner)
    assert back.status_code == 200, back.text
    assert (back.json()["version"], back.json()["document"]["grants"]) == (3, [])
    assert (await client.get("/v1/policy", headers=owner)).json()["version"] == 3
    view = await services.policies.load_view(tenant_a.system)
    assert view.version == 3
    # Without a version: the one before the current (an undo of the restore).
    undo = await client.post("/v1/policy/restore", headers=owner)
    assert (undo.json()["version"], [g["id"] for g in undo.json()["document"]["grants"]]) == (4, ["g"])
    event = await restored_event(services, tenant_a, "policy.restored")
    assert (event["from_version"], event["to_version"]) == (2, 4)
    assert [v["version"] for v in (await client.get("/v1/policy/versions", headers=owner)).json()] == [1, 2, 3, 4]


# --- credentials --------------------------------------------------------------------------------


async def test_a_deleted_credential_is_unusable_then_restored_usable(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    owner = tenant_a.headers()
    body = {"name": "openai", "kind": "api_key", "provider": "openai", "secret": SECRET, "metadata": {"org": "acme"}}
    cid = (await client.post("/v1/credentials", json=body, headers=owner)).json()["id"]
    await client.patch(f"/v1/credentials/{cid}", json={"metadata": {"org": "acme", "env": "prod"}}, headers=owner)
    deleted = await client.delete(f"/v1/credentials/{cid}", headers=owner)
    assert (deleted.status_code, deleted.json()["version"]) == (200, 3)

    assert (await client.get("/v1/credentials", headers=owner)).json() == []
    assert (await client.get(f"/v1/credentials/{cid}", headers=owner)).status_code == 404
    with pytest.raises(NotFound):  # no tool can obtain it while it is deleted
        await services.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    listed = (await client.get("/v1/credentials", params={"include_deleted": "true"}, headers=owner)).json()
    assert [(c["id"], c["deleted_at"] is not None) for c in listed] == [(cid, True)]
    # The sealed secret is kept, re-sealed by a data key rotation like any other.
    await services.credentials.rotate_data_key(tenant_a.system)

    versions = await client.get(f"/v1/credentials/{cid}/versions", headers=owner)
    assert [(v["version"], v["change"], v["metadata"]) for v in versions.json()] == [
        (1, "created", {"org": "acme"}), (2, "updated", {"org": "acme", "env": "prod"}),
        (3, "deleted", {"org": "acme", "env": "prod"}),
    ]  # fmt: skip
    assert SECRET["api_key"] not in versions.text
    assert all(v["fields"] == ["api_key"] for v in versions.json())

    restored = await client.post(f"/v1/credentials/{cid}/restore", json={"version": 1}, headers=owner)
    assert restored.status_code == 200, restored.text
    assert (restored.json()["version"], restored.json()["metadata"], restored.json()["deleted_at"]) == (
        4, {"org": "acme"}, None,
    )  # fmt: skip
    opened = await services.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert opened.secret == SECRET
    event = await restored_event(services, tenant_a, "credential.restored")
    assert (event["from_version"], event["to_version"], event["was_deleted"]) == (1, 4, True)
    assert SECRET["api_key"] not in str(event)
