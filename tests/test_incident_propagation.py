"""Each incident action, taken in one process, holds in another process within a second.

The other process is a second, independent ``Services`` on the same database (its own
connection pools, policy listener and vault key cache), as another API server or worker
would hold. Each check polls with a one-second deadline: a correctness property, not a
performance number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from tenantgate.context import TenantContext
from tenantgate.errors import TenantgateError, Unauthenticated
from tenantgate.gate import Code, ProposedCall, SwitchScope
from tenantgate.installation import Installation, Services
from tenantgate.tools import ToolCall, ToolEffect, ToolPackage, tool
from tenantgate.vault import CredentialUnreadable
from tests import fixture_tools
from tests.conftest import TenantFixture, new_tenant

ECHO = ProposedCall("echo@v1", {"text": "x"})
SEND = ProposedCall("whatsapp_send@v1", {"to": "+4930123456", "message": "hi"})
POLICY: dict[str, Any] = {
    "packages": [{"package": "basics"}, {"package": "whatsapp"}],
    "grants": [{"id": "echo", "tools": ["echo@v1"]}, {"id": "send", "tools": ["whatsapp_send@v1"]}],
    "ai": {"planner": {"provider": "scripted", "script": [{"reply": "ok"}]}},
}
WITHIN_S = 1.0

RELEASE = asyncio.Event()
HELD = asyncio.Event()


class _Nothing(BaseModel):
    pass


@tool("hold@v1", description="Wait until the test releases it.", effect=ToolEffect.READ, timeout_s=10)
async def hold(call: ToolCall, args: _Nothing) -> dict[str, bool]:
    HELD.set()
    await RELEASE.wait()
    return {"released": True}


async def other_process(installation: Installation, *, extra: bool = False) -> Services:
    registry = fixture_tools.registry(installation.settings.mode)
    if extra:
        registry.register_available([hold])
        registry.add_package(ToolPackage("hold", "A tool that waits.", ("hold@v1",)))
    services = Services.build(installation, registry=registry)
    await services.policy_cache.start()
    return services


@pytest.fixture
async def second(installation: Installation) -> AsyncIterator[Services]:
    services = await other_process(installation)
    yield services
    await services.stop()


async def within(check: Callable[[], Awaitable[bool]], *, seconds: float = WITHIN_S) -> float:
    """Seconds until ``check()`` holds; fails if it does not within ``seconds``."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"not effective after {elapsed:.2f}s"
        await asyncio.sleep(0.01)


async def refused(services: Services, key: str) -> bool:
    try:
        await services.authenticator.authenticate(f"Bearer {key}", request_id="t")
    except Unauthenticated:
        return True
    return False


async def decides(services: Services, ctx: TenantContext, call: ProposedCall, code: Code) -> bool:
    return (await services.boundary.gate.decide(ctx, call)).code is code


async def owner(services: Services, tenant: TenantFixture) -> TenantContext:
    return await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")


async def test_revoked_keys_and_disabled_principals_stop_in_another_process(
    services: Services, second: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    assert not await refused(second, tenant_a.owner_key)  # warm: the other process has served this key
    await services.keys.revoke_all(tenant_a.system, reason="leak")
    assert await within(lambda: refused(second, tenant_a.owner_key)) < WITHIN_S
    assert not await refused(second, tenant_b.owner_key)

    b_owner = await owner(second, tenant_b)
    await services.principals.disable(tenant_b.system, b_owner.principal_id, reason="takeover")
    await within(lambda: refused(second, tenant_b.owner_key))
    await services.principals.enable(tenant_b.system, b_owner.principal_id, reason="cleared")

    async def accepted() -> bool:
        return not await refused(second, tenant_b.owner_key)

    await within(accepted)


async def test_pausing_a_tenants_ai_stops_its_runs_in_another_process(
    services: Services, second: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    for tenant in (tenant_a, tenant_b):
        await services.policies.set_policy(tenant.system, POLICY)
    ctx = await owner(second, tenant_a)
    agent = ctx.for_ai_execution(uuid.uuid4())
    assert await decides(second, agent, ECHO, Code.ALLOWED)  # warm: cached in the other process
    await services.policies.set_tenant_switch(tenant_a.system, SwitchScope.AI, reason="incident", set_by="t")
    assert await within(lambda: decides(second, agent, ECHO, Code.KILL_SWITCH)) < WITHIN_S
    session = await second.runtime.sessions.create(ctx)
    ended = await second.runtime.run_turn(ctx, session.id, "hello")
    assert (ended.status.value, ended.error_code) == ("failed", "kill_switch")
    assert await decides(second, ctx, ECHO, Code.ALLOWED)  # the people of the tenant go on
    b = await owner(second, tenant_b)
    assert await decides(second, b.for_ai_execution(uuid.uuid4()), ECHO, Code.ALLOWED)
    await services.policies.resume_tenant_switch(tenant_a.system, SwitchScope.AI)
    await within(lambda: decides(second, agent, ECHO, Code.ALLOWED))


async def test_platform_pause_and_integration_switch_reach_another_process(
    services: Services, second: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    agents = []
    for tenant in (tenant_a, tenant_b):
        await services.policies.set_policy(tenant.system, POLICY)
        agents.append((await owner(second, tenant)).for_ai_execution(uuid.uuid4()))
    assert all([await decides(second, a, ECHO, Code.ALLOWED) for a in agents])
    await services.policies.set_platform_switch(SwitchScope.AI, reason="vendor breach", set_by="t")
    try:
        for agent in agents:
            assert await within(lambda: decides(second, agent, ECHO, Code.KILL_SWITCH)) < WITHIN_S  # noqa: B023
    finally:
        await services.policies.resume_platform_switch(SwitchScope.AI)
    await within(lambda: decides(second, agents[0], ECHO, Code.ALLOWED))

    humans = [await owner(second, t) for t in (tenant_a, tenant_b)]
    services.policies.check_integration("whatsapp")
    await services.policies.set_platform_switch(SwitchScope.INTEGRATION, "whatsapp", reason="outage", set_by="t")
    try:
        for human in humans:
            assert await within(lambda: decides(second, human, SEND, Code.KILL_SWITCH)) < WITHIN_S  # noqa: B023
            assert await decides(second, human, ECHO, Code.ALLOWED)
    finally:
        await services.policies.resume_platform_switch(SwitchScope.INTEGRATION, "whatsapp")
    await within(lambda: decides(second, humans[0], SEND, Code.CONFIRMATION_REQUIRED))


async def test_a_pause_stops_a_run_already_going_in_another_process_before_its_next_planner_call(
    services: Services, installation: Installation
) -> None:
    worker = await other_process(installation, extra=True)
    try:
        tenant = await new_tenant(services, "held")
        script = [{"calls": [{"tool": "hold@v1"}]}, {"reply": "never"}]
        policy = {"packages": [{"package": "hold"}], "grants": [{"id": "hold", "tools": ["hold@v1"]}],
                  "ai": {"planner": {"provider": "scripted", "script": script}}}  # fmt: skip
        await worker.policies.set_policy(tenant.system, policy)
        ctx = await owner(worker, tenant)
        session = await worker.runtime.sessions.create(ctx)
        HELD.clear()
        RELEASE.clear()
        live = await worker.runtime.start_turn(ctx, session.id, "go")
        await asyncio.wait_for(HELD.wait(), 10)  # the run is inside its first tool call
        await services.policies.set_tenant_switch(tenant.system, SwitchScope.AI, reason="stop it", set_by="t")

        async def paused() -> bool:
            return (await worker.policy_cache.view(ctx)).switches.ai

        await within(paused)
        RELEASE.set()
        assert live.task is not None
        ended = await asyncio.wait_for(live.task, 10)
        assert (ended.status.value, ended.error_code, ended.steps) == ("failed", "kill_switch", 1)
        assert ended.reply is None
    finally:
        RELEASE.set()
        await worker.stop()


async def test_a_rotated_data_key_stops_opening_in_another_process_at_once(
    services: Services, second: Services, tenant_a: TenantFixture
) -> None:
    await services.credentials.create(tenant_a.system, name="openai", kind="api_key", secret={"api_key": "sk-1"})
    used = await second.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert used.secret == {"api_key": "sk-1"}  # the other process now holds the old data key unwrapped
    (before,) = await services.credentials.list(tenant_a.system)
    async with second.db.tenant(tenant_a.system) as conn:
        old_sealed = (await conn.execute(
            sa.text("SELECT sealed FROM tenantgate.credentials WHERE tenant_id = :t AND id = :i"),
            {"t": tenant_a.id, "i": before.id})).scalar_one()  # fmt: skip

    new_key, count = await services.credentials.rotate_data_key(tenant_a.system, reason="exposed")
    assert count == 1

    async def old_key_dead() -> bool:
        try:
            async with second.db.tenant(tenant_a.system) as conn:
                await second.vault.open(conn, tenant_a.system, before.id, old_sealed)
        except CredentialUnreadable:
            return True
        return False

    assert await within(old_key_dead) < WITHIN_S
    again = await second.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert again.secret == {"api_key": "sk-1"}
    created = await second.credentials.create(tenant_a.system, name="new", kind="api_key", secret={"api_key": "x"})
    assert created.data_key_id == new_key  # the other process seals under the new key too


async def test_a_process_that_cannot_reach_its_database_refuses_every_credential(
    installation: Installation, services: Services, tenant_a: TenantFixture
) -> None:
    """Fail closed: with no database to ask whether a key was revoked, nothing authenticates."""
    cut_off = Services.build(dataclasses.replace(installation, app_url="postgresql://nobody:x@127.0.0.1:1/none"))
    try:
        with pytest.raises(TenantgateError) as refusal:
            await cut_off.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")
        assert refusal.value.code in ("database_unavailable", "unauthenticated")
    finally:
        await cut_off.stop()
    assert not await refused(services, tenant_a.owner_key)  # the key itself is fine
