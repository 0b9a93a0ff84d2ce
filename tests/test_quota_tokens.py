"""Token budgets in the runtime: reserve the call's maximum before the provider is asked, settle the real usage."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tenantgate.config import Settings
from tenantgate.quotas import DEFAULT_PRICE, Budget, ModelPrice, PriceTable
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


# --- cost units: the price table ------------------------------------------------------------------


@pytest.fixture
def prices(rig: Rig) -> Iterator[Callable[..., None]]:
    """Set the runtime's price table for one test (the settings' JSON, parsed as at start-up)."""
    quotas = rig.services.quotas
    before = quotas.prices

    def use(table: dict[str, Any], default: dict[str, Any] | None = None) -> None:
        quotas.prices = PriceTable.parse(json.dumps(table), json.dumps(default) if default else None)

    yield use
    quotas.prices = before


async def test_a_run_is_charged_cost_units_exactly_per_the_price_table(
    rig: Rig, http: httpx.AsyncClient, prices: Callable[..., None]
) -> None:
    prices({"openai:gpt-4o-mini": {"input_per_1k": 2.5, "output_per_1k": 10}, "openai:*": {"input_per_1k": 99,
            "output_per_1k": 99}})  # fmt: skip
    wire = Wire("openai", rig)
    tenant = await tenant_with(rig, wire.planner([]))
    rig.openai.reply(openai_text("Hello.", prompt=1200, completion=300))
    turn = await say(http, tenant, await session(http, tenant), "Hi")
    assert turn["status"] == "completed"
    # 1200 * 2.5 / 1000 + 300 * 10 / 1000 = 3 + 3: the exact model's price, not the provider's "*".
    assert await spent(rig, tenant, Budget.COST_UNITS) == 6
    assert await spent(rig, tenant, Budget.LLM_INPUT_TOKENS) == 1200
    # A second call adds its own cost; fractions round up per call (7 * 2.5 / 1000 + 1 * 10 / 1000 -> 1).
    rig.openai.reply(openai_text("Again.", prompt=7, completion=1))
    assert (await say(http, tenant, await session(http, tenant), "Hi"))["status"] == "completed"
    assert await spent(rig, tenant, Budget.COST_UNITS) == 7
    usage = (await http.get("/v1/usage", headers=tenant.headers())).json()
    assert next(b for b in usage["budgets"] if b["limit"] == "cost_units_per_month")["used"] == 7


async def test_a_run_that_would_exceed_its_cost_budget_stops_before_any_byte_is_sent(
    rig: Rig, http: httpx.AsyncClient, prices: Callable[..., None]
) -> None:
    prices({"openai:*": {"input_per_1k": 1, "output_per_1k": 10}})
    wire = Wire("openai", rig)
    tenant = await tenant_with(rig, wire.planner([]))
    # max_tokens 1024 at 10 a 1k is 11 units at most: a budget of 10 cannot hold one call.
    await rig.services.quotas.plans.set_tenant(tenant.id, overrides={"cost_units_per_month": 10})
    turn = await say(http, tenant, await session(http, tenant), "Hi")
    assert turn["status"] == "failed"
    assert turn["error"]["code"] == "quota_exceeded"
    assert "cost_units_per_month" in turn["error"]["message"]
    assert rig.openai.received == []  # nothing reached the provider
    run = await run_of(http, tenant, turn["run_id"])
    assert (run["status"], run["error_code"]) == ("failed", "quota_exceeded")
    # All or nothing: the token counters reserved in the same transaction were rolled back.
    for budget in (Budget.COST_UNITS, Budget.LLM_INPUT_TOKENS, Budget.LLM_OUTPUT_TOKENS):
        assert await spent(rig, tenant, budget) == 0
    # With room for one call's maximum, the same run goes through and pays its real usage.
    await rig.services.quotas.plans.set_tenant(tenant.id, overrides={"cost_units_per_month": 12})
    rig.openai.reply(openai_text("Sent.", prompt=100, completion=100))
    assert (await say(http, tenant, await session(http, tenant), "Hi"))["status"] == "completed"
    assert await spent(rig, tenant, Budget.COST_UNITS) == 2  # 0.1 + 1.0, rounded up


async def test_an_unpriced_model_pays_the_conservative_default_never_nothing(
    rig: Rig, http: httpx.AsyncClient, prices: Callable[..., None]
) -> None:
    prices({"anthropic:*": {"input_per_1k": 1, "output_per_1k": 1}})  # names no openai model
    wire = Wire("openai", rig)
    tenant = await tenant_with(rig, wire.planner([]))
    rig.openai.reply(openai_text("Hello.", prompt=1000, completion=200))
    assert (await say(http, tenant, await session(http, tenant), "Hi"))["status"] == "completed"
    # The built-in default: 15 and 75 units per 1k tokens -> 15 + 15.
    assert ModelPrice(input_per_1k=Decimal(15), output_per_1k=Decimal(75)) == DEFAULT_PRICE
    assert await spent(rig, tenant, Budget.COST_UNITS) == 30
    # An operator's default price (TENANTGATE_MODEL_DEFAULT_PRICE) replaces it.
    prices({}, default={"input_per_1k": 2, "output_per_1k": 5})
    rig.openai.reply(openai_text("Hello.", prompt=1000, completion=200))
    assert (await say(http, tenant, await session(http, tenant), "Hi"))["status"] == "completed"
    assert await spent(rig, tenant, Budget.COST_UNITS) == 30 + 3


def test_the_price_table_reads_the_settings_json_and_refuses_bad_prices() -> None:
    settings = Settings(
        model_prices='{"openai:gpt-4o": {"input_per_1k": 0.15, "output_per_1k": 0.6}}',  # type: ignore[arg-type]
        model_default_price='{"input_per_1k": 20, "output_per_1k": 80}',  # type: ignore[arg-type]
    )
    table = PriceTable.parse(settings.model_prices, settings.model_default_price)
    assert table.price("openai", "gpt-4o") == ModelPrice(input_per_1k=Decimal("0.15"), output_per_1k=Decimal("0.6"))
    assert table.price("openai", "gpt-4o").cost(1000, 1000) == 1  # 0.75, up
    assert table.price("openai", "o3").cost(1000, 1000) == 100  # not named: the operator's default
    assert PriceTable.parse(None).price("x", "y") is DEFAULT_PRICE
    for bad, says in (
        ('{"gpt-4o": {"input_per_1k": 1, "output_per_1k": 1}}', "<provider>:<model>"),
        ('{"openai:*": {"input_per_1k": -1, "output_per_1k": 1}}', "input_per_1k"),
        ('{"openai:*": {"input_per_1k": 1}}', "output_per_1k"),
        ('{"openai:*": {"input_per_1k": 1, "output_per_1k": 1, "per_call": 3}}', "per_call"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not valid JSON"),
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            PriceTable.parse(bad)
    with pytest.raises(ValueError, match="model_default_price"):
        PriceTable.parse("{}", '{"input_per_1k": "free", "output_per_1k": 1}')
