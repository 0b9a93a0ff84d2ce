"""Incident controls through the platform API: each action's effect, its audit event, tenant B
untouched, bad input refused with nothing changed, and doing it twice is fine."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from tenantgate.agent import TurnResult
from tenantgate.audit import PLATFORM_CHAIN
from tenantgate.auth import Authenticator, JwtVerifier
from tenantgate.config import JwtIssuerConfig, JwtKeyConfig
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import InvalidInput, RoleRequired, Unauthenticated
from tenantgate.gate import Code, ProposedCall, SwitchScope, args_digest
from tenantgate.installation import Installation, Services
from tests import fixture_tools
from tests.conftest import TenantFixture

POLICY: dict[str, Any] = {
    "packages": [{"package": "basics"}, {"package": "whatsapp"}],
    "grants": [
        {"id": "echo", "tools": ["echo@v1"]},
        {"id": "send", "tools": ["whatsapp_send@v1"], "kinds": ["user", "ai_execution"]},
    ],
    "ai": {"planner": {"provider": "scripted", "script": [{"reply": "All good."}]}},
}
ECHO = ProposedCall("echo@v1", {"text": "x"})
SEND = ProposedCall("whatsapp_send@v1", {"to": "+4930123456", "message": "hi"})
HS_SECRET = "incident-hs-secret-" + "s" * 48


@pytest.fixture
async def op(services: Services) -> dict[str, str]:
    _, key = await services.platform_keys.create("incident")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def platform_clean(services: Services) -> AsyncIterator[None]:
    """Platform switches concern every test: whatever a test turns on is off again afterwards."""
    before = {s.id for s in await services.policies.platform_switches()}
    yield
    for switch in await services.policies.platform_switches():
        if switch.id not in before:
            await services.policies.clear_platform_switch(switch.id)


async def whoami(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})).status_code


async def events(services: Services, tenant: TenantFixture, action: str) -> list[dict[str, Any]]:
    return [dict(r.payload or {}) for r in await services.audit.page(tenant.system, action=action)]


async def platform_events(services: Services, action: str) -> list[tuple[dict[str, Any], uuid.UUID | None]]:
    async with services.db.admin() as conn:
        rows = await conn.execute(
            sa.text("SELECT payload, principal_id FROM tenantgate.audit_events WHERE tenant_id = :t AND action = :a"
                    " ORDER BY seq"),
            {"t": PLATFORM_CHAIN, "a": action},
        )  # fmt: skip
        return [(dict(r.payload), r.principal_id) for r in rows]


async def owner(services: Services, tenant: TenantFixture) -> TenantContext:
    return await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")


async def turn(services: Services, tenant: TenantFixture) -> TurnResult:
    ctx = await owner(services, tenant)
    session = await services.runtime.sessions.create(ctx)
    return await services.runtime.run_turn(ctx, session.id, "Anything to report?")


async def service_account(services: Services, tenant: TenantFixture) -> tuple[uuid.UUID, str]:
    account = await services.principals.create(
        tenant.system, name="bot", kind=PrincipalKind.SERVICE_ACCOUNT, roles=frozenset({Role.MEMBER})
    )
    return account.id, (await services.keys.create(tenant.system, principal_id=account.id)).key


# --- revoking keys ------------------------------------------------------------------------------


async def test_revoking_every_key_of_a_tenant_stops_them_all_and_leaves_b_alone(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> None:  # fmt: skip
    _, bot_key = await service_account(services, tenant_a)
    assert await whoami(client, bot_key) == 200
    url = f"/v1/platform/tenants/{tenant_a.id}/incident/revoke-keys"
    revoked = await client.post(url, json={"reason": "leaked in a CI log"}, headers=op)
    assert revoked.status_code == 200, revoked.text
    assert len(revoked.json()["revoked"]) == 2
    assert all(k["revoked_at"] for k in revoked.json()["revoked"])
    assert (await whoami(client, tenant_a.owner_key), await whoami(client, bot_key)) == (401, 401)
    assert await whoami(client, tenant_b.owner_key) == 200
    (event,) = await events(services, tenant_a, "key.revoked_all")
    assert (event["scope"], event["count"], event["reason"]) == ("tenant", 2, "leaked in a CI log")
    assert event["by"].startswith("platform:")
    assert await events(services, tenant_b, "key.revoked_all") == []
    # Twice is fine: nothing left to revoke, and the trail says so.
    again = await client.post(url, json={"reason": "sweep"}, headers=op)
    assert (again.status_code, again.json()["revoked"]) == (200, [])
    assert [e["count"] for e in await events(services, tenant_a, "key.revoked_all")] == [2, 0]


async def test_revoking_one_principal_can_disable_it_so_its_tokens_stop_too(
    client: httpx.AsyncClient, services: Services, installation: Installation, op: dict[str, str],
    tenant_a: TenantFixture,
) -> None:  # fmt: skip
    person = await services.principals.create(
        tenant_a.system, name="p", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER}), external_id="idp|alice"
    )
    key = (await services.keys.create(tenant_a.system, principal_id=person.id)).key
    issuer = JwtIssuerConfig(issuer="https://idp.incident", audience="tg", algorithms=("HS256",),
                             keys=(JwtKeyConfig(secret=HS_SECRET),))  # fmt: skip
    authenticator = Authenticator(
        db=services.db, pepper=installation.pepper, mode=services.settings.mode, jwt=JwtVerifier((issuer,)),
        audit=services.audit,
    )  # fmt: skip
    claims = {"iss": issuer.issuer, "aud": "tg", "sub": "idp|alice", "tenant_id": str(tenant_a.id),
              "exp": int(time.time()) + 600}  # fmt: skip
    token = f"Bearer {jwt.encode(claims, HS_SECRET, algorithm='HS256')}"
    assert (await authenticator.authenticate(token, request_id="t")).principal_id == person.id

    body = {"reason": "account takeover", "principal_id": str(person.id), "disable_principal": True}
    done = await client.post(f"/v1/platform/tenants/{tenant_a.id}/incident/revoke-keys", json=body, headers=op)
    assert done.status_code == 200, done.text
    assert [k["principal_id"] for k in done.json()["revoked"]] == [str(person.id)]
    assert done.json()["principal"]["disabled_at"] is not None
    assert await whoami(client, key) == 401
    with pytest.raises(Unauthenticated):
        await authenticator.authenticate(token, request_id="t")
    assert await whoami(client, tenant_a.owner_key) == 200  # the owner's key was not this principal's
    (disabled,) = await events(services, tenant_a, "principal.disabled")
    assert (disabled["principal_id"], disabled["changed"]) == (str(person.id), True)

    enabled = await client.post(f"/v1/platform/tenants/{tenant_a.id}/principals/{person.id}/enable",
                                json={"reason": "password reset done"}, headers=op)  # fmt: skip
    assert (enabled.status_code, enabled.json()["disabled_at"]) == (200, None)
    assert (await authenticator.authenticate(token, request_id="t")).principal_id == person.id
    assert await whoami(client, key) == 401  # a revoked key stays revoked
    assert len(await events(services, tenant_a, "principal.enabled")) == 1


async def test_disabling_a_principal_twice_is_fine_and_stops_its_keys_without_revoking_them(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], tenant_a: TenantFixture
) -> None:
    bot, bot_key = await service_account(services, tenant_a)
    url = f"/v1/platform/tenants/{tenant_a.id}/principals/{bot}/disable"
    first = await client.post(url, json={"reason": "odd traffic"}, headers=op)
    second = await client.post(url, json={"reason": "odd traffic"}, headers=op)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["disabled_at"] == second.json()["disabled_at"]  # the first time is kept
    assert await whoami(client, bot_key) == 401
    assert [e["changed"] for e in await events(services, tenant_a, "principal.disabled")] == [True, False]
    assert all(k.revoked_at is None for k in await services.keys.list(tenant_a.system, principal_id=bot))


async def test_bad_input_changes_nothing(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> None:  # fmt: skip
    _, b_bot_key = await service_account(services, tenant_b)
    b_bot = (await services.authenticator.authenticate(f"Bearer {b_bot_key}", request_id="t")).principal_id
    revoke = f"/v1/platform/tenants/{tenant_a.id}/incident/revoke-keys"
    cases = [
        (f"/v1/platform/tenants/{uuid.uuid4()}/incident/revoke-keys", {"reason": "x"}, 404),
        (revoke, {"reason": "x", "principal_id": str(uuid.uuid4())}, 404),
        # B's principal named under A's tenant: not found in A, and B's keys are untouched.
        (revoke, {"reason": "x", "principal_id": str(b_bot), "disable_principal": True}, 404),
        (revoke, {"reason": "x", "disable_principal": True}, 422),
        (revoke, {"reason": ""}, 422),
        (revoke, {"reason": "   "}, 422),
        (revoke, {}, 422),
        (f"/v1/platform/tenants/{tenant_a.id}/principals/{b_bot}/disable", {"reason": "x"}, 404),
        (f"/v1/platform/tenants/{uuid.uuid4()}/incident/pause-ai", {"reason": "x"}, 404),
        (f"/v1/platform/tenants/{uuid.uuid4()}/incident/rotate-data-key", {"reason": "x"}, 404),
        ("/v1/platform/incident/integrations/whatsap/disable", {"reason": "typo"}, 404),
        ("/v1/platform/incident/integrations/whatsap/enable", None, 404),
        ("/v1/platform/incident/pause-ai", {"reason": "x", "extra": 1}, 422),
    ]
    for url, body, status in cases:
        response = await client.post(url, json=body, headers=op)
        assert response.status_code == status, (url, body, response.text)
        assert response.json()["code"] in ("not_found", "invalid_input"), response.text
    unknown = await client.post("/v1/platform/incident/integrations/whatsap/disable", json={"reason": "t"}, headers=op)
    assert "whatsapp" in unknown.json()["message"]  # the error names what exists
    assert await whoami(client, tenant_a.owner_key) == 200
    assert await whoami(client, b_bot_key) == 200
    assert await events(services, tenant_a, "key.revoked_all") == []
    assert all(s.target != "whatsap" for s in await services.policies.platform_switches())


async def test_incident_endpoints_need_a_platform_key(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    for url in (f"/v1/platform/tenants/{tenant_a.id}/incident/revoke-keys", "/v1/platform/incident/pause-ai"):
        response = await client.post(url, json={"reason": "x"}, headers=tenant_a.headers())
        assert response.status_code == 401
    assert await whoami(client, tenant_a.owner_key) == 200


# --- the data key -------------------------------------------------------------------------------


async def _data_keys(services: Services, tenant: TenantFixture) -> dict[uuid.UUID, str]:
    async with services.db.tenant(tenant.system) as conn:
        rows = await conn.execute(
            sa.text("SELECT id, state FROM tenantgate.tenant_data_keys WHERE tenant_id = :t"), {"t": tenant.id}
        )
        return {r.id: r.state for r in rows}


async def test_rotating_a_tenants_data_key_reseals_its_credentials_and_destroys_the_old_key(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> None:  # fmt: skip
    for tenant in (tenant_a, tenant_b):
        for name in ("openai", "sheets"):
            await services.credentials.create(tenant.system, name=name, kind="api_key", secret={"api_key": f"k-{name}"})
    (old_a,) = await _data_keys(services, tenant_a)
    keys_b = await _data_keys(services, tenant_b)
    url = f"/v1/platform/tenants/{tenant_a.id}/incident/rotate-data-key"
    rotated = await client.post(url, json={"reason": "key material exposed"}, headers=op)
    assert rotated.status_code == 200, rotated.text
    new_a = uuid.UUID(rotated.json()["data_key_id"])
    assert rotated.json()["resealed"] == 2
    assert await _data_keys(services, tenant_a) == {old_a: "destroyed", new_a: "active"}
    assert await _data_keys(services, tenant_b) == keys_b  # B's key untouched
    opened = await services.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert opened.secret == {"api_key": "k-openai"}
    assert {c.data_key_id for c in await services.credentials.list(tenant_a.system)} == {new_a}
    (event,) = await events(services, tenant_a, "credential.resealed")
    assert (event["resealed"], event["retired_keys_destroyed"], event["reason"]) == (2, 1, "key material exposed")
    assert await events(services, tenant_b, "credential.resealed") == []
    # Again: another fresh key; nothing breaks.
    again = await client.post(url, json={"reason": "belt and braces"}, headers=op)
    assert again.status_code == 200
    assert sorted((await _data_keys(services, tenant_a)).values()) == ["active", "destroyed", "destroyed"]


# --- pausing AI ---------------------------------------------------------------------------------


async def test_pausing_a_tenants_ai_stops_its_turns_not_its_humans_nor_tenant_b(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], tenant_a: TenantFixture,
    tenant_b: TenantFixture,
) -> None:  # fmt: skip
    for tenant in (tenant_a, tenant_b):
        await services.policies.set_policy(tenant.system, POLICY)
    url = f"/v1/platform/tenants/{tenant_a.id}/incident/pause-ai"
    first = await client.post(url, json={"reason": "prompt injection campaign"}, headers=op)
    second = await client.post(url, json={"reason": "prompt injection campaign"}, headers=op)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["id"] == second.json()["id"]  # pausing twice is one pause

    paused = await turn(services, tenant_a)
    assert (paused.status.value, paused.error_code, paused.steps) == ("failed", "kill_switch", 0)
    assert (await turn(services, tenant_b)).status.value == "completed"
    human = await owner(services, tenant_a)
    assert (await services.boundary.gate.decide(human, ECHO)).code is Code.ALLOWED  # people keep working
    agent = human.for_ai_execution(uuid.uuid4())
    assert (await services.boundary.gate.decide(agent, ECHO)).code is Code.KILL_SWITCH
    changes = await events(services, tenant_a, "kill_switch.changed")
    assert [(e["scope"], e["state"], e["level"]) for e in changes] == [("ai", "on", "tenant")] * 2

    resumed = await client.post(f"/v1/platform/tenants/{tenant_a.id}/incident/resume-ai", headers=op)
    assert (resumed.status_code, resumed.json()["resumed"]) == (200, True)
    assert (await turn(services, tenant_a)).status.value == "completed"
    idle = await client.post(f"/v1/platform/tenants/{tenant_a.id}/incident/resume-ai", headers=op)
    assert (idle.status_code, idle.json()) == (200, {"resumed": False, "switch": None})
    assert [e["state"] for e in await events(services, tenant_a, "kill_switch.changed")] == ["on", "on", "off"]
    assert await events(services, tenant_b, "kill_switch.changed") == []


async def test_pausing_ai_platform_wide_stops_every_tenant_and_scheduled_runs(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], platform_clean: None,
    tenant_a: TenantFixture, tenant_b: TenantFixture,
) -> None:  # fmt: skip
    for tenant in (tenant_a, tenant_b):
        await services.policies.set_policy(tenant.system, POLICY)
    job = await services.cron.add(await owner(services, tenant_a), name="report", kind="every", schedule=3600,
                                  message="Write the report")  # fmt: skip
    paused = await client.post("/v1/platform/incident/pause-ai", json={"reason": "model vendor breach"}, headers=op)
    assert paused.status_code == 200, paused.text
    try:
        for tenant in (tenant_a, tenant_b):
            ended = await turn(services, tenant)
            assert (ended.status.value, ended.error_code) == ("failed", "kill_switch")
            assert "platform" in (ended.reason or "")
        async with services.db.admin() as conn:
            await conn.execute(sa.text("UPDATE tenantgate.cron_jobs SET next_run_at = now() - interval '1 second'"
                                       " WHERE id = :id"), {"id": job.id})  # fmt: skip
        ran = [r for r in await services.schedules.run_due() if r.id == job.id]
        assert [r.status for r in ran] == ["failed"]
        human = await owner(services, tenant_b)
        assert (await services.boundary.gate.decide(human, ECHO)).code is Code.ALLOWED
        (on, actor) = (await platform_events(services, "kill_switch.changed"))[-1]
        assert (on["scope"], on["state"], on["level"], on["reason"]) == ("ai", "on", "platform", "model vendor breach")
        assert actor is not None  # the acting platform key
    finally:
        resumed = await client.post("/v1/platform/incident/resume-ai", headers=op)
    assert resumed.json()["resumed"] is True
    assert (await turn(services, tenant_a)).status.value == "completed"
    (off, _) = (await platform_events(services, "kill_switch.changed"))[-1]
    assert (off["scope"], off["state"]) == ("ai", "off")
    again = await client.post("/v1/platform/incident/resume-ai", headers=op)
    assert again.json() == {"resumed": False, "switch": None}


# --- disabling an integration -------------------------------------------------------------------


async def test_disabling_an_integration_denies_its_tools_for_every_tenant(
    client: httpx.AsyncClient, services: Services, op: dict[str, str], platform_clean: None,
    tenant_a: TenantFixture, tenant_b: TenantFixture,
) -> None:  # fmt: skip
    callers = []
    for tenant in (tenant_a, tenant_b):
        await services.policies.set_policy(tenant.system, POLICY)
        callers.append(await owner(services, tenant))
    assert [(await services.boundary.gate.decide(c, SEND)).code for c in callers] == [Code.CONFIRMATION_REQUIRED] * 2
    url = "/v1/platform/incident/integrations/whatsapp/disable"
    first = await client.post(url, json={"reason": "provider compromised"}, headers=op)
    second = await client.post(url, json={"reason": "provider compromised"}, headers=op)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["id"] == second.json()["id"]
    for caller in callers:
        decision = await services.boundary.gate.decide(caller, SEND)
        assert decision.code is Code.KILL_SWITCH
        assert "integration whatsapp" in decision.reason
        assert (await services.boundary.gate.decide(caller, ECHO)).code is Code.ALLOWED  # other tools go on
    (event, actor) = (await platform_events(services, "kill_switch.changed"))[-1]
    assert (event["scope"], event["target"], event["state"]) == ("integration", "whatsapp", "on")
    assert actor is not None
    enabled = await client.post("/v1/platform/incident/integrations/whatsapp/enable", headers=op)
    assert enabled.json()["resumed"] is True
    assert [(await services.boundary.gate.decide(c, SEND)).code for c in callers] == [Code.CONFIRMATION_REQUIRED] * 2


async def test_an_admin_cannot_revoke_or_disable_an_owner_and_nobody_disables_themselves(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    admin = await services.principals.create(
        tenant_a.system, name="admin", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN})
    )
    admin_key = (await services.keys.create(tenant_a.system, principal_id=admin.id)).key
    ctx = await services.authenticator.authenticate(f"Bearer {admin_key}", request_id="t")
    with pytest.raises(RoleRequired):  # all or nothing: the owner's key is among them
        await services.keys.revoke_all(ctx, reason="cleanup")
    with pytest.raises(RoleRequired):
        await services.principals.disable(ctx, tenant_a.owner_id, reason="coup")
    with pytest.raises(InvalidInput):
        await services.principals.disable(ctx, admin.id, reason="oops")
    assert (await whoami(client, tenant_a.owner_key), await whoami(client, admin_key)) == (200, 200)
    assert await events(services, tenant_a, "key.revoked_all") == []
    assert await events(services, tenant_a, "principal.disabled") == []
    mine = await services.keys.revoke_all(ctx, principal_id=admin.id, reason="rotating my own")
    assert len(mine) == 1
    assert await whoami(client, admin_key) == 401


async def test_a_recorded_directive_does_not_run_while_a_switch_covers_it(
    services: Services, platform_clean: None, tenant_a: TenantFixture
) -> None:
    """A side effect the gate allowed before the incident, run later by the worker, is refused then."""
    await services.policies.set_policy(tenant_a.system, POLICY)
    agent = (await owner(services, tenant_a)).for_ai_execution(uuid.uuid4())
    arguments = {"to": "+4930123456", "message": "queued before the incident"}
    directive, _ = await services.directives.store.record(
        agent, tool="whatsapp_send@v1", arguments=arguments, args_digest=args_digest(arguments),
        idempotency_key=str(uuid.uuid4()), call_id=uuid.uuid4(), run_id=None, max_attempts=1,
    )  # fmt: skip
    services.policies.check_integration("whatsapp")
    await services.policies.set_platform_switch(SwitchScope.INTEGRATION, "whatsapp", reason="outage", set_by="t")
    sent = len(fixture_tools.EXECUTED)
    done = await services.directives.execute(tenant_a.id, directive.id)
    assert (done.status.value, done.last_error) == (
        "failed", "kill_switch: A platform kill switch is on for integration whatsapp.",
    )  # fmt: skip
    assert fixture_tools.EXECUTED[sent:] == []  # nothing was sent

    await services.policies.resume_platform_switch(SwitchScope.INTEGRATION, "whatsapp")
    await services.policies.set_tenant_switch(tenant_a.system, SwitchScope.AI, reason="pause", set_by="t")
    paused, _ = await services.directives.store.record(
        agent, tool="whatsapp_send@v1", arguments=arguments, args_digest=args_digest(arguments),
        idempotency_key=str(uuid.uuid4()), call_id=uuid.uuid4(), run_id=None, max_attempts=1,
    )  # fmt: skip
    done = await services.directives.execute(tenant_a.id, paused.id)
    assert (done.status.value, done.last_error) == (
        "failed",
        "kill_switch: A tenant kill switch is on for all AI execution.",
    )
    assert fixture_tools.EXECUTED[sent:] == []
