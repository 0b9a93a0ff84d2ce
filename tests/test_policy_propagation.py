"""Changes reach every process within a second, and a cache that cannot be sure denies."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tenantgate.context import TenantContext
from tenantgate.gate import Code, ProposedCall, SwitchScope, Verdict
from tenantgate.installation import Installation, Services
from tests import fixture_tools
from tests.conftest import TenantFixture
from tests.faults import PgProxy

POLICY = {"packages": [{"package": "basics"}], "grants": [{"id": "echo", "tools": ["echo@v1"]}]}
ECHO = ProposedCall("echo@v1", {"text": "x"})


async def other_process(installation: Installation, app_url: str | None = None, *, wait_s: float = 5.0) -> Services:
    """A second set of services on the same database: what another API process would hold."""
    if app_url is not None:
        installation = dataclasses.replace(installation, app_url=app_url)
    services = Services.build(installation, registry=fixture_tools.registry(installation.settings.mode))
    await services.policy_cache.start(wait_s=wait_s)
    return services


@pytest.fixture
async def second(installation: Installation) -> AsyncIterator[Services]:
    services = await other_process(installation)
    yield services
    await services.stop()


async def owner(services: Services, tenant: TenantFixture) -> TenantContext:
    return await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")


async def until(services: Services, ctx: TenantContext, code: Code, *, within: float = 1.0) -> float:
    """Seconds until ``services`` decides ``ECHO`` with ``code``; fails past ``within``."""
    started = time.monotonic()
    while True:
        decision = await services.boundary.gate.decide(ctx, ECHO)
        elapsed = time.monotonic() - started
        if decision.code is code:
            return elapsed
        assert elapsed < within, f"still {decision.code} after {elapsed:.2f}s"
        await asyncio.sleep(0.01)


async def test_kill_switch_reaches_another_process_within_a_second(
    services: Services, second: Services, tenant_a: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    ctx = await owner(second, tenant_a)
    await until(second, ctx, Code.ALLOWED)  # warm: the second process now caches the view
    switch = await services.policies.set_tenant_switch(tenant_a.system, SwitchScope.ALL, reason="incident", set_by="t")
    assert await until(second, ctx, Code.KILL_SWITCH) < 1.0
    await services.policies.clear_tenant_switch(tenant_a.system, switch.id)
    await until(second, ctx, Code.ALLOWED)


async def test_platform_switch_and_policy_change_reach_another_process(
    services: Services, second: Services, tenant_a: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    ctx = await owner(second, tenant_a)
    await until(second, ctx, Code.ALLOWED)
    switch = await services.policies.set_platform_switch(SwitchScope.TOOL, "echo@v1", reason="bad tool", set_by="t")
    try:
        await until(second, ctx, Code.KILL_SWITCH)
    finally:
        await services.policies.clear_platform_switch(switch.id)
    await until(second, ctx, Code.ALLOWED)
    await services.policies.set_policy(tenant_a.system, {"packages": [{"package": "basics"}]})  # grant withdrawn
    await until(second, ctx, Code.NOT_GRANTED)


async def test_the_writing_process_sees_its_own_change_at_once(services: Services, tenant_a: TenantFixture) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    ctx = await owner(services, tenant_a)
    assert (await services.boundary.gate.decide(ctx, ECHO)).allowed
    await services.policies.set_tenant_switch(tenant_a.system, SwitchScope.AI, reason="pause", set_by="t")
    agent = ctx.for_ai_execution(uuid.uuid4())
    assert (await services.boundary.gate.decide(agent, ECHO)).code is Code.KILL_SWITCH  # no wait at all


async def test_a_listener_that_loses_its_connection_fails_closed_then_recovers(
    installation: Installation, services: Services, tenant_a: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    proxy = PgProxy(installation.app_url)
    await proxy.start()
    cut_off = await other_process(installation, app_url=proxy.url())
    try:
        ctx = await owner(cut_off, tenant_a)
        assert (await cut_off.boundary.gate.decide(ctx, ECHO)).allowed
        await proxy.cut()
        # Within a second or two of losing its listener, the cached allow is gone: denied.
        waited = await until(cut_off, ctx, Code.POLICY_UNAVAILABLE, within=3.0)
        assert waited <= 2.5
        decision = await cut_off.boundary.gate.decide(ctx, ECHO)
        assert (decision.verdict, decision.code) == (Verdict.DENY, Code.POLICY_UNAVAILABLE)
        await proxy.start()  # the database is reachable again, on the same port
        await until(cut_off, ctx, Code.ALLOWED, within=5.0)
    finally:
        await cut_off.stop()
        await proxy.cut()


async def test_a_process_without_its_database_denies(
    installation: Installation, services: Services, tenant_a: TenantFixture
) -> None:
    dead = await other_process(installation, app_url="postgresql://nobody:x@127.0.0.1:1/none", wait_s=0)
    try:
        ctx = await owner(services, tenant_a)
        decision = await dead.boundary.gate.decide(ctx, ECHO)
        assert decision.code is Code.POLICY_UNAVAILABLE
    finally:
        await dead.stop()
