"""Token budgets in the runtime: reserve the call's maximum before the provider is asked, settle the real usage."""

from __future__ import annotations

import httpx

from tenantgate.quotas import Budget
from tests.conftest import TenantFixture
from tests.fake_llm import openai_text
from tests.test_agent_http import Rig, Wire, http, rig, run_of, say, session, tenant_with

__all__ = ["http", "rig"]  # the agent tests' fixtures: a runtime over a loopback fake provider


async def spent(rig: Rig, tenant: TenantFixture, budget: Budget) -> int:
    quotas = rig.services.quotas
    limits = (await quotas.plans.limits(tenant.system)).limits
    return next(u.used for u in await quotas.budgets.usage(tenant.system, limits) if u.budget is budget)


async def test_a_run_within_budget_is_charged_its_real_usage(rig: Rig, http: httpx.AsyncClient) -> None:
    wire = Wire("openai", rig)
    tenant = await tenant_with(rig, wire.planner([]))
    rig.openai.reply(openai_text("Hello.", prompt=40, completion=7))
    turn = await say(http, tenant, await session(http, tenant), "Hi")
    assert turn["status"] == "completed"
    assert len(rig.openai.received) == 1
    # The reservation (about a third of the prompt's characters, and max_tokens) was settled to the real usage.
    assert await spent(rig, tenant, Budget.LLM_INPUT_TOKENS) == 40
    assert await spent(rig, tenant, Budget.LLM_OUTPUT_TOKENS) == 7


async def test_a_run_that_would_exceed_its_token_budget_stops_before_the_provider(
    rig: Rig, http: httpx.AsyncClient
) -> None:
    wire = Wire("openai", rig)
    tenant = await tenant_with(rig, wire.planner([]))
    # max_tokens is 1024 by default: a budget of 500 output tokens cannot hold one call.
    await rig.services.quotas.plans.set_tenant(tenant.id, overrides={"llm_output_tokens_per_month": 500})
    rig.openai.reply(openai_text("never sent"))
    turn = await say(http, tenant, await session(http, tenant), "Hi")
    assert turn["status"] == "failed"
    assert turn["error"]["code"] == "quota_exceeded"
    assert "llm_output_tokens_per_month" in turn["error"]["message"]
    assert rig.openai.received == []  # nothing reached the provider
    run = await run_of(http, tenant, turn["run_id"])
    assert (run["status"], run["error_code"]) == ("failed", "quota_exceeded")
    assert await spent(rig, tenant, Budget.LLM_OUTPUT_TOKENS) == 0
