"""The tenant-state tools as a planner reaches them: registered in both modes, through the real boundary."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.gate import Code, ProposedCall, Verdict
from tenantgate.installation import Installation, Services, build_registry
from tenantgate.tools import Capability, Outcome, ToolEffect
from tests.conftest import TenantFixture, new_tenant

STATE_TOOLS = {
    "memory": {"memory_search@v1", "memory_get@v1", "memory_put@v1", "memory_forget@v1"},
    "cron": {"cron@v1"},
    "heartbeat": {"heartbeat@v1"},
    "skills": {"skills_list@v1", "skill_get@v1"},
}
POLICY: dict[str, Any] = {
    "packages": [{"package": p} for p in STATE_TOOLS],
    "grants": [{"id": "state", "tools": sorted(set().union(*STATE_TOOLS.values()))}],
}


@pytest.fixture(scope="module")
async def real(installation: Installation) -> AsyncIterator[Services]:
    """Services with the real built-in registry (the session's services use test stand-ins)."""
    services = Services.build(installation)
    await services.policy_cache.start()
    yield services
    await services.stop()


async def agent(real: Services, tenant: TenantFixture) -> TenantContext:
    await real.policies.set_policy(tenant.system, POLICY)
    owner = await real.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    return owner.for_ai_execution(uuid.uuid4())


async def run(real: Services, ctx: TenantContext, tool: str, **arguments: Any) -> Any:
    outcome = await real.boundary.call(ctx, ProposedCall(tool, arguments))
    assert outcome.decision.verdict is Verdict.ALLOW, outcome.decision.reason
    assert outcome.result is not None
    assert outcome.result.outcome is Outcome.SUCCEEDED, outcome.result.error
    return outcome.result.output


@pytest.mark.parametrize("mode", list(DeploymentMode))
async def test_state_tools_are_registered_in_both_modes(real: Services, mode: DeploymentMode) -> None:
    settings = Settings(_env_file=None, mode=mode)  # type: ignore[call-arg]
    registry = build_registry(
        settings, memory=real.memory, cron=real.cron, heartbeat=real.heartbeat, skills=real.skills
    )
    for package, tools in STATE_TOOLS.items():
        assert set(registry.package_tools(package)) == tools
    specs = {t.name: t.spec for t in registry}
    assert specs["memory_put@v1"].effect is ToolEffect.WRITE
    assert specs["memory_search@v1"].effect is ToolEffect.READ
    assert specs["memory_put@v1"].capabilities == {Capability.MEMORY}
    assert specs["cron@v1"].capabilities == specs["heartbeat@v1"].capabilities == {Capability.SCHEDULE}
    state = {name for tools in STATE_TOOLS.values() for name in tools}
    assert all(not specs[name].local_capabilities for name in state)
    assert build_registry(settings).package_tools("memory") == ()  # without stores, no state tools


async def test_an_agent_uses_memory_through_the_boundary(real: Services) -> None:
    tenant = await new_tenant(real, "tools")
    ctx = await agent(real, tenant)
    saved = await run(real, ctx, "memory_put@v1", key="supplier/acme", content="Acme ships on Tuesdays.",
                      title="Acme shipping", tags=["suppliers"])  # fmt: skip
    assert (saved["change"], saved["version"]) == ("created", 1)
    found = await run(real, ctx, "memory_search@v1", query="when does acme ship", max_results=3)
    assert [r["key"] for r in found["results"]] == ["supplier/acme"]
    by_key = await run(real, ctx, "memory_get@v1", key="supplier/acme")
    by_id = await run(real, ctx, "memory_get@v1", id=saved["id"])
    assert by_key == by_id
    assert by_key["content"] == "Acme ships on Tuesdays."
    bad = await real.boundary.call(ctx, ProposedCall("memory_get@v1", {"id": saved["id"], "key": "x"}))
    assert bad.decision.code is Code.INVALID_ARGUMENTS
    # What the agent wrote is attributed to the run, on behalf of the owner.
    [entry] = await real.memory.recent(tenant.system)
    versions = await real.memory.versions(tenant.system, entry.id)
    assert versions[0].changed_by == ctx.principal_id


async def test_an_agent_schedules_jobs_and_heartbeats_within_limits(real: Services) -> None:
    tenant = await new_tenant(real, "tools")
    ctx = await agent(real, tenant)
    added = await run(real, ctx, "cron@v1", action="add", name="standup", cron="0 9 * * 1-5",
                      timezone="Europe/Berlin", message="Post the standup summary.")  # fmt: skip
    assert added["added"]["next_run_at"] is not None
    listed = await run(real, ctx, "cron@v1", action="list")
    assert [j["name"] for j in listed["jobs"]] == ["standup"]
    too_often = await real.boundary.call(
        ctx, ProposedCall("cron@v1", {"action": "add", "name": "spam", "every_seconds": 10, "message": "x"})
    )
    assert too_often.result is not None
    assert too_often.result.outcome is Outcome.FAILED
    assert "shortest interval allowed here is 300 s" in str(too_often.result.error)
    two_schedules = await real.boundary.call(
        ctx, ProposedCall("cron@v1", {"action": "add", "name": "x", "every_seconds": 600, "cron": "0 * * * *",
                                      "message": "x"})
    )  # fmt: skip
    assert two_schedules.decision.code is Code.INVALID_ARGUMENTS
    removed = await run(real, ctx, "cron@v1", action="remove", name="standup")
    assert removed["removed"]["version"] == 2

    hb = await run(real, ctx, "heartbeat@v1", action="add", name="inbox", prompt="Check the inbox.", every_seconds=3600)
    assert hb["add"]["enabled"] is True
    assert (await run(real, ctx, "heartbeat@v1", action="pause", name="inbox"))["pause"]["enabled"] is False
    assert (await run(real, ctx, "heartbeat@v1", action="resume", name="inbox"))["resume"]["enabled"] is True
    assert [t["name"] for t in (await run(real, ctx, "heartbeat@v1", action="list"))["tasks"]] == ["inbox"]
    await run(real, ctx, "heartbeat@v1", action="remove", name="inbox")
    assert (await run(real, ctx, "heartbeat@v1", action="list"))["tasks"] == []


async def test_an_agent_reads_skills_but_another_tenants_agent_does_not(real: Services) -> None:
    tenant, other = await new_tenant(real, "tools"), await new_tenant(real, "other")
    ctx, other_ctx = await agent(real, tenant), await agent(real, other)
    await real.skills.author(
        tenant.system, "---\nname: refunds\ndescription: Refund rules.\n---\nRefund within 14 days.\n"
    )
    listed = await run(real, ctx, "skills_list@v1")
    assert [s["name"] for s in listed["skills"]] == ["refunds"]
    got = await run(real, ctx, "skill_get@v1", name="refunds")
    assert got["body"] == "Refund within 14 days."
    assert (await run(real, other_ctx, "skills_list@v1"))["skills"] == []
    missing = await real.boundary.call(other_ctx, ProposedCall("skill_get@v1", {"name": "refunds"}))
    assert missing.result is not None
    assert missing.result.outcome is Outcome.FAILED
    assert "NotFound" in str(missing.result.error)
    # Memory and schedules of one tenant are invisible to the other's agent too.
    await run(real, ctx, "memory_put@v1", key="k", content="only for the first tenant")
    assert (await run(real, other_ctx, "memory_search@v1", query="first tenant"))["results"] == []
    await run(real, ctx, "cron@v1", action="add", name="j", every_seconds=3600, message="m")
    assert (await run(real, other_ctx, "cron@v1", action="list"))["jobs"] == []


async def test_tools_are_denied_without_a_grant(real: Services) -> None:
    tenant = await new_tenant(real, "tools")
    ctx = await agent(real, tenant)
    await real.policies.set_policy(tenant.system, {"packages": [{"package": "memory"}]})
    outcome = await real.boundary.call(ctx, ProposedCall("memory_put@v1", {"key": "k", "content": "x"}))
    assert outcome.decision.verdict is Verdict.DENY
    assert outcome.result is None
    assert await real.memory.recent(tenant.system) == []
