"""Budgets and the gate's quota hook: exact under concurrency, per tenant, and failing closed."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound, QuotaBackendUnavailable, QuotaExceeded
from tenantgate.gate import Code, Gate, ProposedCall, Verdict, quota_hook
from tenantgate.installation import Installation, Services
from tenantgate.quotas import Budget, Budgets, Limits, PlanStore, Quotas, RateLimiter
from tenantgate.store import Database
from tests import fixture_tools
from tests.conftest import TenantFixture
from tests.faults import PgProxy

POLICY: dict[str, Any] = {
    "packages": [{"package": "basics"}, {"package": "whatsapp"}],
    "grants": [
        {"id": "basics", "tools": ["echo@v1", "whoami_tool@v1"]},
        {"id": "send", "tools": ["whatsapp_send@v1"]},
    ],
}
ECHO = ProposedCall("echo@v1", {"text": "hi"})


def ran(tenant: TenantFixture, tool: str = "echo@v1") -> int:
    return sum(1 for t, name, _ in fixture_tools.EXECUTED if t == str(tenant.id) and name == tool)


@pytest.fixture
async def tenant(services: Services, tenant_a: TenantFixture) -> TenantFixture:
    await services.policies.set_policy(tenant_a.system, POLICY)
    return tenant_a


async def owner(services: Services, tenant: TenantFixture) -> TenantContext:
    return await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")


async def used(services: Services, tenant: TenantFixture, budget: Budget) -> int:
    limits = (await services.quotas.plans.limits(tenant.system)).limits
    return next(u.used for u in await services.quotas.budgets.usage(tenant.system, limits) if u.budget is budget)


async def test_fifty_concurrent_calls_against_a_budget_of_ten_run_exactly_ten(
    services: Services, tenant: TenantFixture
) -> None:
    ctx = await owner(services, tenant)
    await services.quotas.plans.set_tenant(tenant.id, overrides={"tool_calls_per_day": 10})
    outcomes = await asyncio.gather(*(services.boundary.call(ctx, ECHO) for _ in range(50)))
    codes = [o.decision.code for o in outcomes]
    assert codes.count(Code.ALLOWED) == 10
    assert codes.count(Code.QUOTA_EXCEEDED) == 40
    assert ran(tenant) == 10  # exactly ten executed, on PostgreSQL's counter
    assert await used(services, tenant, Budget.TOOL_CALLS) == 10
    refused = next(o.decision for o in outcomes if o.decision.code is Code.QUOTA_EXCEEDED)
    assert refused.details[0]["limit"] == "tool_calls_per_day"
    assert refused.details[0]["retry_after"] >= 1
    assert "reset_at" in refused.details[0]
    assert "resets at" in refused.reason


async def test_a_tenant_that_exhausts_its_quota_leaves_others_untouched(
    services: Services, tenant: TenantFixture, tenant_b: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_b.system, POLICY)
    ctx, ctx_b = await owner(services, tenant), await owner(services, tenant_b)

    async def timed_b() -> float:
        started = time.perf_counter()
        assert (await services.boundary.call(ctx_b, ECHO)).decision.allowed
        return time.perf_counter() - started

    baseline = statistics.median([await timed_b() for _ in range(8)])
    await services.quotas.plans.set_tenant(tenant.id, overrides={"tool_calls_per_day": 3})
    flood = [services.boundary.call(ctx, ECHO) for _ in range(40)]
    during = await asyncio.gather(*flood, *(timed_b() for _ in range(8)))
    a_codes = [o.decision.code for o in during[:40]]  # type: ignore[union-attr]
    assert a_codes.count(Code.ALLOWED) == 3
    after = statistics.median([await timed_b() for _ in range(8)])
    # B's limits are its own: its counter holds only its own calls, and it keeps being served.
    assert await used(services, tenant_b, Budget.TOOL_CALLS) == 24
    assert (await services.quotas.plans.limits(tenant_b.system)).limits == services.quotas.plans.defaults
    # B's latency once A is refused is of the same order as before (generous: 2 shared cores).
    assert after < max(5 * baseline, baseline + 0.05)


async def test_outbound_messages_count_per_tenant_per_day(services: Services, tenant: TenantFixture) -> None:
    await services.quotas.plans.set_tenant(tenant.id, overrides={"outbound_messages_per_day": 2})
    send = ProposedCall("whatsapp_send@v1", {"to": "+4930123456", "message": "hello"})
    ctx = await owner(services, tenant)
    decisions = [await services.boundary.gate.decide(ctx, send, confirmed=False) for _ in range(3)]
    # whatsapp_send is high impact: the gate asks a human, and never counts what it did not allow.
    assert {d.code for d in decisions} == {Code.CONFIRMATION_REQUIRED}
    quotas = services.quotas
    for _ in range(2):
        await quotas.check_tool_call(tenant.system, "whatsapp_send@v1", outbound_channel="whatsapp")
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.check_tool_call(tenant.system, "whatsapp_send@v1", outbound_channel="whatsapp")
    assert refused.value.fields["limit"] == "outbound_messages_per_day"
    # A refused outbound reservation took nothing: the tool-call counter rolled back with it.
    assert await used(services, tenant, Budget.TOOL_CALLS) == 2
    assert await used(services, tenant, Budget.OUTBOUND_MESSAGES) == 2
    await quotas.check_tool_call(tenant.system, "echo@v1")  # other calls still run


async def test_token_budget_reserves_the_maximum_and_settles_the_real_usage(
    services: Services, tenant_a: TenantFixture
) -> None:
    quotas = services.quotas
    await quotas.plans.set_tenant(tenant_a.id, overrides={"llm_output_tokens_per_month": 1000})
    first = await quotas.reserve_tokens(tenant_a.system, input_tokens=500, output_tokens=800)
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.reserve_tokens(tenant_a.system, input_tokens=10, output_tokens=300)
    assert refused.value.fields["limit"] == "llm_output_tokens_per_month"
    assert await used(services, tenant_a, Budget.LLM_INPUT_TOKENS) == 500  # the refusal reserved nothing
    await quotas.settle_tokens(first, input_tokens=120, output_tokens=200)
    await quotas.settle_tokens(first, input_tokens=999, output_tokens=999)  # settled once; again does nothing
    assert await used(services, tenant_a, Budget.LLM_INPUT_TOKENS) == 120
    assert await used(services, tenant_a, Budget.LLM_OUTPUT_TOKENS) == 200
    second = await quotas.reserve_tokens(tenant_a.system, input_tokens=10, output_tokens=300)
    await quotas.budgets.settle(second.reservation)  # never used: released entirely
    assert await used(services, tenant_a, Budget.LLM_OUTPUT_TOKENS) == 200


async def test_limits_are_validated_and_audited(services: Services, tenant_a: TenantFixture) -> None:
    plans = services.quotas.plans
    with pytest.raises(InvalidInput, match="Unknown limits"):
        await plans.set_tenant(tenant_a.id, overrides={"tool_calls_per_year": 5})
    with pytest.raises(InvalidInput):
        await plans.set_tenant(tenant_a.id, overrides={"tool_calls_per_day": -1})
    with pytest.raises(NotFound):
        await plans.set_tenant(tenant_a.id, plan=f"nope-{uuid.uuid4().hex[:6]}")
    with pytest.raises(NotFound):
        await plans.set_tenant(uuid.uuid4(), overrides={"tool_calls_per_day": 5})
    assert (await plans.limits(tenant_a.system)).overrides == {}  # nothing changed
    plan = f"pro-{uuid.uuid4().hex[:6]}"
    await plans.set_plan(plan, {"tool_calls_per_day": 50_000, "cron_jobs": 40})
    resolved = await plans.set_tenant(tenant_a.id, plan=plan, overrides={"cron_jobs": 30})
    assert (resolved.plan, resolved.limits.tool_calls_per_day, resolved.limits.cron_jobs) == (plan, 50_000, 30)
    defaults = Limits.defaults(services.settings.mode)
    assert resolved.limits.outbound_messages_per_day == defaults.outbound_messages_per_day
    async with services.db.admin() as conn:
        actions = (
            await conn.execute(
                sa.text("SELECT action FROM tenantgate.audit_events WHERE tenant_id = :t AND action = 'limits.set'"),
                {"t": tenant_a.id},
            )
        ).all()
    assert len(actions) == 1


async def test_tenants_cannot_see_or_raise_limits_at_sql_level(
    services: Services, tenant: TenantFixture, tenant_b: TenantFixture
) -> None:
    await services.quotas.plans.set_tenant(tenant.id, overrides={"tool_calls_per_day": 7})
    await services.quotas.check_tool_call(tenant.system, "echo@v1")
    async with services.db.tenant(tenant_b.system) as conn:
        assert (await conn.execute(sa.text("SELECT * FROM tenantgate.budget_counters"))).all() == []
        assert (await conn.execute(sa.text("SELECT * FROM tenantgate.tenant_limits"))).all() == []
    # B cannot write a counter row for A (RLS WITH CHECK).
    with pytest.raises(sa_exc.ProgrammingError):
        async with services.db.tenant(tenant_b.system) as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO tenantgate.budget_counters (tenant_id, counter, period_start, used)"
                    " VALUES (:t, 'tool_calls', now(), 0)"
                ),
                {"t": tenant.id},
            )
    # And no tenant may raise its own limits: the app role has no write on tenant_limits.
    for statement in (
        "UPDATE tenantgate.tenant_limits SET overrides = '{}' WHERE tenant_id = :t",
        "INSERT INTO tenantgate.tenant_limits (tenant_id, overrides) VALUES (:t, '{}')",
        "INSERT INTO tenantgate.quota_plans (name, limits) VALUES ('free-lunch', '{}')",
    ):
        with pytest.raises(sa_exc.ProgrammingError, match="permission denied"):
            async with services.db.tenant(tenant.system) as conn:
                await conn.execute(sa.text(statement), {"t": tenant.id})
    assert (await services.quotas.plans.limits(tenant.system)).limits.tool_calls_per_day == 7


def _quotas(db: Database, services: Services, rates: RateLimiter | None = None) -> Quotas:
    plans = PlanStore(db=db, audit=services.audit, mode=services.settings.mode, ttl_s=0)
    return Quotas(plans=plans, budgets=Budgets(db=db), rates=rates or RateLimiter())


async def test_database_lost_denies_with_quota_backend_unavailable(
    installation: Installation, services: Services, tenant: TenantFixture
) -> None:
    proxy = PgProxy(installation.app_url)
    await proxy.start()
    db = Database(app_url=proxy.url(), admin_url=installation.admin_url, roles=installation.roles, pool_size=2)
    quotas = _quotas(db, services)
    gate = Gate(registry=services.registry, policies=services.policy_cache, quota=quota_hook(quotas.check_tool_call))
    ctx = await owner(services, tenant)
    try:
        assert (await gate.decide(ctx, ECHO)).allowed
        await proxy.cut()
        decision = await gate.decide(ctx, ECHO)
        assert (decision.verdict, decision.code) == (Verdict.DENY, Code.QUOTA_BACKEND_UNAVAILABLE)
        with pytest.raises(QuotaBackendUnavailable):
            await quotas.reserve_tokens(tenant.system, input_tokens=1, output_tokens=1)
    finally:
        await proxy.cut()
        await db.dispose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_unreachable_denies_with_quota_backend_unavailable(
    services: Services, tenant: TenantFixture
) -> None:
    rates = RateLimiter(f"redis://127.0.0.1:{_closed_port()}/0", timeout_s=0.3)
    quotas = _quotas(services.db, services, rates)
    gate = Gate(registry=services.registry, policies=services.policy_cache, quota=quota_hook(quotas.check_tool_call))
    try:
        decision = await gate.decide(await owner(services, tenant), ECHO)
    finally:
        await rates.close()
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.QUOTA_BACKEND_UNAVAILABLE)
    assert decision.details[0]["backend"] == "redis"
    assert await used(services, tenant, Budget.TOOL_CALLS) == 0  # nothing reserved for a refused call


async def test_cron_jobs_and_heartbeats_are_capped_by_the_tenants_plan(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    await services.quotas.plans.set_tenant(tenant_a.id, overrides={"cron_jobs": 1, "heartbeat_tasks": 1})
    ctx = tenant_a.system
    await services.cron.add(ctx, name="daily", kind="cron", schedule="0 9 * * *", message="Report.")
    with pytest.raises(QuotaExceeded) as refused:
        await services.cron.add(ctx, name="nightly", kind="cron", schedule="0 22 * * *", message="Report.")
    assert refused.value.fields["limit"] == 1
    await services.heartbeat.add(ctx, name="check", prompt="Anything new?", every_seconds=3600)
    with pytest.raises(QuotaExceeded):
        await services.heartbeat.add(ctx, name="check2", prompt="Anything new?", every_seconds=3600)
    # Tenant B keeps the mode's default caps.
    for n in range(2):
        await services.cron.add(tenant_b.system, name=f"job{n}", kind="cron", schedule="0 9 * * *", message="Hi.")
