"""The boundary over HTTP: listing tools, calling them, confirmations, policy and kill switches."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tenantgate.context import PrincipalKind, Role
from tenantgate.errors import NotFound, PermissionDenied
from tenantgate.gate import ProposedCall, Verdict
from tenantgate.installation import Services
from tests import fixture_tools
from tests.conftest import TenantFixture

CONTACT = "+4930123456"
POLICY: dict[str, Any] = {
    "packages": [{"package": "basics"}, {"package": "whatsapp"}, {"package": "memory"}],
    "grants": [
        {"id": "basics", "tools": ["echo@v1", "whoami_tool@v1", "slow@v1", "crash@v1", "bad_output@v1"]},
        {"id": "contacts", "tools": ["whatsapp_send@v1"], "when": [{"path": "to", "op": "one_of", "value": [CONTACT]}]},
        {"id": "wipe", "tools": ["memory_wipe@v1"]},
        {"id": "bots", "tools": ["echo@v1"], "kinds": ["service_account"]},
    ],
}


@pytest.fixture
async def tenant(services: Services, tenant_a: TenantFixture) -> TenantFixture:
    await services.policies.set_policy(tenant_a.system, POLICY)
    return tenant_a


async def call(
    client: httpx.AsyncClient, tenant: TenantFixture, tool: str, key: str | None = None, **body: Any
) -> httpx.Response:
    return await client.post(f"/v1/tools/{tool}/call", json=body, headers=tenant.headers(key))


def ran(tenant: TenantFixture, tool: str) -> list[dict[str, Any]]:
    return [args for t, name, args in fixture_tools.EXECUTED if t == str(tenant.id) and name == tool]


async def test_tools_lists_what_the_tenant_installed_in_this_mode(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    listed = (await client.get("/v1/tools", headers=tenant.headers())).json()
    names = {t["name"] for t in listed["tools"]}
    assert listed["mode"] == "saas"
    assert names == {
        "echo@v1",
        "whoami_tool@v1",
        "slow@v1",
        "crash@v1",
        "bad_output@v1",
        "whatsapp_send@v1",
        "memory_wipe@v1",
    }
    echo = next(t for t in listed["tools"] if t["name"] == "echo@v1")
    assert echo["input_schema"]["properties"]["text"]["type"] == "string"
    assert echo["output_schema"]["required"] == ["text"]


async def test_allowed_call_runs_and_is_marked_untrusted(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    response = await call(client, tenant, "echo@v1", arguments={"text": "hello"})
    assert response.status_code == 200
    body = response.json()
    assert (body["output"], body["untrusted"], body["outcome"]) == ({"text": "hello"}, True, "succeeded")
    assert ran(tenant, "echo@v1") == [{"text": "hello"}]


async def test_denied_call_runs_nothing(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    unknown = await call(client, tenant, "shell@v1", arguments={"command": "rm -rf /"})
    bad_args = await call(client, tenant, "echo@v1", arguments={"text": 42})
    stranger = await call(client, tenant, "whatsapp_send@v1", arguments={"to": "+4930999999", "message": "x"})
    assert [(r.status_code, r.json()["code"]) for r in (unknown, bad_args, stranger)] == [
        (403, "capability_denied"),
        (403, "invalid_arguments"),
        (403, "argument_denied"),
    ]
    assert stranger.json()["rule_ids"] == ["contacts"]
    assert ran(tenant, "shell@v1") == ran(tenant, "echo@v1") == ran(tenant, "whatsapp_send@v1") == []


async def test_tool_failures_are_outcomes_not_crashes(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    crash = await call(client, tenant, "crash@v1")
    slow = await call(client, tenant, "slow@v1", arguments={"seconds": 2})
    bad = await call(client, tenant, "bad_output@v1")
    assert [(r.status_code, r.json()["code"]) for r in (crash, slow, bad)] == [
        (502, "tool_failed"),
        (504, "tool_timeout"),
        (502, "tool_failed"),
    ]
    assert "the tool broke" in crash.json()["message"]


async def test_confirmation_round_trip(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    args = {"to": CONTACT, "message": "Your order shipped"}
    pending = await call(client, tenant, "whatsapp_send@v1", arguments=args)
    assert (pending.status_code, pending.json()["code"]) == (202, "confirmation_required")
    confirmation_id = pending.json()["confirmation_id"]
    assert ran(tenant, "whatsapp_send@v1") == []

    queue = (await client.get("/v1/confirmations", headers=tenant.headers())).json()
    assert [(c["id"], c["tool"], c["arguments"]) for c in queue] == [(confirmation_id, "whatsapp_send@v1", args)]
    early = await call(client, tenant, "whatsapp_send@v1", arguments=args, confirmation_id=confirmation_id)
    assert (early.status_code, early.json()["code"]) == (403, "confirmation_invalid")  # not approved yet

    approved = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant.headers())
    assert approved.json()["status"] == "approved"
    other_args = await call(
        client, tenant, "whatsapp_send@v1", arguments={**args, "message": "changed"}, confirmation_id=confirmation_id
    )
    assert other_args.json()["code"] == "confirmation_invalid"
    sent = await call(client, tenant, "whatsapp_send@v1", arguments=args, confirmation_id=confirmation_id)
    assert sent.status_code == 200
    replay = await call(client, tenant, "whatsapp_send@v1", arguments=args, confirmation_id=confirmation_id)
    assert (replay.status_code, replay.json()["code"]) == (403, "confirmation_invalid")
    assert ran(tenant, "whatsapp_send@v1") == [args]
    again = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant.headers())
    assert (again.status_code, again.json()["code"]) == (409, "conflict")


async def test_denied_confirmation_cannot_be_used(client: httpx.AsyncClient, tenant: TenantFixture) -> None:
    args = {"to": CONTACT, "message": "x"}
    confirmation_id = (await call(client, tenant, "whatsapp_send@v1", arguments=args)).json()["confirmation_id"]
    denied = await client.post(f"/v1/confirmations/{confirmation_id}/deny", headers=tenant.headers())
    assert denied.json()["status"] == "denied"
    used = await call(client, tenant, "whatsapp_send@v1", arguments=args, confirmation_id=confirmation_id)
    assert used.json()["code"] == "confirmation_invalid"
    assert ran(tenant, "whatsapp_send@v1") == []


async def test_only_a_human_with_the_role_can_approve(
    client: httpx.AsyncClient, tenant: TenantFixture, services: Services
) -> None:
    pending = await call(client, tenant, "memory_wipe@v1", arguments={"scope": "all"})
    # memory_wipe is destructive but not high-impact: the owner just runs it.
    assert pending.status_code == 200
    args = {"to": CONTACT, "message": "x"}
    confirmation_id = uuid.UUID(
        (await call(client, tenant, "whatsapp_send@v1", arguments=args)).json()["confirmation_id"]
    )

    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    agent = owner.for_ai_execution(uuid.uuid4())
    with pytest.raises(PermissionDenied, match="Only a human"):
        await services.confirmations.approve(agent, confirmation_id)
    bot = await services.principals.create(
        tenant.system, name="bot", kind=PrincipalKind.SERVICE_ACCOUNT, roles=frozenset({Role.OWNER})
    )
    bot_key = (await services.keys.create(tenant.system, principal_id=bot.id)).key
    refused = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant.headers(bot_key))
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert (await services.confirmations.get(owner, confirmation_id)).status.value == "pending"


async def test_members_cannot_approve_others_privileged_requests(
    client: httpx.AsyncClient, tenant: TenantFixture, services: Services
) -> None:
    hipaa_like = {
        **POLICY,
        "grants": [*POLICY["grants"][:2], {"id": "wipe", "tools": ["memory_wipe@v1"], "confirm": True}],
    }
    await services.policies.set_policy(tenant.system, hipaa_like)
    confirmation_id = uuid.UUID(
        (await call(client, tenant, "memory_wipe@v1", arguments={"scope": "all"})).json()["confirmation_id"]
    )
    member = await services.principals.create(
        tenant.system, name="m", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
    )
    member_ctx = await services.authenticator.authenticate(
        f"Bearer {(await services.keys.create(tenant.system, principal_id=member.id)).key}", request_id="t"
    )
    # The owner's request is not even visible to a member, let alone approvable.
    with pytest.raises(NotFound):
        await services.confirmations.approve(member_ctx, confirmation_id)


async def test_agents_calls_are_bound_by_the_confirmation_of_their_human(
    tenant: TenantFixture, services: Services
) -> None:
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    agent = owner.for_ai_execution(uuid.uuid4())
    args = {"to": CONTACT, "message": "from the agent"}
    first = await services.boundary.call(agent, ProposedCall("whatsapp_send@v1", args))
    assert first.decision.verdict is Verdict.CONFIRM
    assert first.confirmation is not None
    await services.confirmations.approve(owner, first.confirmation.id)
    # Another tenant member's agent cannot redeem it: it is bound to the responsible human.
    other = await services.principals.create(
        tenant.system, name="o", kind=PrincipalKind.USER, roles=frozenset({Role.OWNER})
    )
    other_ctx = await services.authenticator.authenticate(
        f"Bearer {(await services.keys.create(tenant.system, principal_id=other.id)).key}", request_id="t"
    )
    stolen = await services.boundary.call(
        other_ctx.for_ai_execution(uuid.uuid4()),
        ProposedCall("whatsapp_send@v1", args),
        confirmation_id=first.confirmation.id,
    )
    assert stolen.decision.code.value == "confirmation_invalid"
    done = await services.boundary.call(
        agent, ProposedCall("whatsapp_send@v1", args), confirmation_id=first.confirmation.id
    )
    assert done.result is not None
    assert done.result.outcome.value == "succeeded"


async def test_policy_api_validates_and_versions(client: httpx.AsyncClient, tenant_b: TenantFixture) -> None:
    assert (await client.get("/v1/policy", headers=tenant_b.headers())).json()["version"] == 0
    bad = await client.put(
        "/v1/policy",
        json={
            "packages": [{"package": "basics"}],
            "grants": [{"id": "x", "tools": ["shell@v1"]}, {"id": "y", "tools": ["ghost@v1"]}],
        },
        headers=tenant_b.headers(),
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")
    assert len(bad.json()["problems"]) == 2
    ok = await client.put(
        "/v1/policy",
        json={"packages": [{"package": "basics"}], "grants": [{"id": "x", "tools": ["echo@v1"]}]},
        headers=tenant_b.headers(),
    )
    assert ok.json()["version"] == 1
    assert (await call(client, tenant_b, "echo@v1", arguments={"text": "b"})).status_code == 200


async def test_tenant_kill_switch_takes_effect_on_the_next_call(
    client: httpx.AsyncClient, tenant: TenantFixture
) -> None:
    assert (await call(client, tenant, "echo@v1", arguments={"text": "before"})).status_code == 200
    switch = await client.post(
        "/v1/kill-switches",
        json={"scope": "tool", "target": "echo@v1", "reason": "incident 7"},
        headers=tenant.headers(),
    )
    assert switch.status_code == 201
    blocked = await call(client, tenant, "echo@v1", arguments={"text": "during"})
    assert (blocked.status_code, blocked.json()["code"]) == (403, "kill_switch")
    await client.delete(f"/v1/kill-switches/{switch.json()['id']}", headers=tenant.headers())
    assert (await call(client, tenant, "echo@v1", arguments={"text": "after"})).status_code == 200
    assert ran(tenant, "echo@v1") == [{"text": "before"}, {"text": "after"}]


async def test_platform_kill_switch_and_compliance(
    client: httpx.AsyncClient, tenant: TenantFixture, services: Services
) -> None:
    _, platform_key = await services.platform_keys.create("ops")
    op = {"Authorization": f"Bearer {platform_key}"}
    switch = await client.post(
        "/v1/platform/kill-switches",
        json={"scope": "integration", "target": "whatsapp", "reason": "provider outage"},
        headers=op,
    )
    try:
        refused = await call(client, tenant, "whatsapp_send@v1", arguments={"to": CONTACT, "message": "x"})
        assert (refused.status_code, refused.json()["code"]) == (403, "kill_switch")
    finally:
        await client.delete(f"/v1/platform/kill-switches/{switch.json()['id']}", headers=op)
    assert (
        await call(client, tenant, "whatsapp_send@v1", arguments={"to": CONTACT, "message": "x"})
    ).status_code == 202
    hipaa = await client.put(f"/v1/platform/tenants/{tenant.id}/compliance", json={"mode": "hipaa"}, headers=op)
    assert hipaa.status_code == 200
    denied = await call(client, tenant, "whatsapp_send@v1", arguments={"to": CONTACT, "message": "x"})
    assert denied.json()["code"] == "compliance_denied"


async def test_tenant_b_cannot_reach_tenant_a_confirmations_or_policy(
    client: httpx.AsyncClient, tenant: TenantFixture, tenant_b: TenantFixture
) -> None:
    confirmation_id = (
        await call(client, tenant, "whatsapp_send@v1", arguments={"to": CONTACT, "message": "x"})
    ).json()["confirmation_id"]
    approve = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant_b.headers())
    look = await client.get(f"/v1/confirmations/{confirmation_id}", headers=tenant_b.headers())
    assert [approve.status_code, look.status_code] == [404, 404]
    assert (await client.get("/v1/confirmations", headers=tenant_b.headers())).json() == []
    assert (await client.get("/v1/policy", headers=tenant_b.headers())).json()["version"] == 0
    assert (await call(client, tenant_b, "echo@v1", arguments={"text": "x"})).json()["code"] == "not_granted"


async def test_claimed_tenant_ids_in_arguments_change_nothing(
    client: httpx.AsyncClient, tenant: TenantFixture, tenant_b: TenantFixture
) -> None:
    spoof = await call(client, tenant, "whoami_tool@v1", arguments={"tenant_id": str(tenant_b.id)})
    assert (spoof.status_code, spoof.json()["code"]) == (403, "invalid_arguments")
    honest = await call(client, tenant, "whoami_tool@v1", arguments={})
    assert honest.json()["output"]["tenant_id"] == str(tenant.id)


async def test_every_call_is_audited_with_its_decision_and_outcome(
    client: httpx.AsyncClient, tenant: TenantFixture, services: Services
) -> None:
    await call(client, tenant, "echo@v1", arguments={"text": "audited"})
    await call(client, tenant, "ghost@v1")
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    decided = await services.audit.page(owner, action="gate.decided")
    executed = await services.audit.page(owner, action="tool.executed")
    assert [(e.tool, e.decision, e.code) for e in decided][-2:] == [
        ("echo@v1", "allow", "allowed"),
        ("ghost@v1", "deny", "unknown_tool"),
    ]
    assert [(e.tool, e.decision) for e in executed][-1:] == [("echo@v1", "succeeded")]
    assert "audited" not in str([e.payload for e in decided])  # arguments are referenced by digest, not stored


async def test_hostile_tool_names_are_denied_and_audited_safely(
    client: httpx.AsyncClient, tenant: TenantFixture, services: Services
) -> None:
    response = await client.post(
        "/v1/tools/%00evil%1b%5b2J/call", json={"arguments": {"\x00key": 1}}, headers=tenant.headers()
    )
    assert (response.status_code, response.json()["code"]) == (403, "unknown_tool")
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    last = (await services.audit.page(owner, action="gate.decided"))[-1]
    assert last.tool is None
    assert last.payload is not None
    assert last.payload["proposed_tool"] == "\\x00evil\\x1b[2J"


async def test_members_see_and_decide_only_their_own_requests(
    client: httpx.AsyncClient, tenant: TenantFixture, services: Services
) -> None:
    async def member() -> tuple[str, Any]:
        created = await services.principals.create(
            tenant.system, name="m", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
        )
        key = (await services.keys.create(tenant.system, principal_id=created.id)).key
        return key, await services.authenticator.authenticate(f"Bearer {key}", request_id="t")

    alice_key, alice = await member()
    bob_key, _ = await member()
    args = {"to": CONTACT, "message": "from alice's agent"}
    asked = await services.boundary.call(alice.for_ai_execution(uuid.uuid4()), ProposedCall("whatsapp_send@v1", args))
    assert asked.confirmation is not None
    confirmation_id = asked.confirmation.id

    bob_sees = (await client.get("/v1/confirmations", headers=tenant.headers(bob_key))).json()
    bob_approves = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant.headers(bob_key))
    assert (bob_sees, bob_approves.status_code) == ([], 404)
    alice_sees = (await client.get("/v1/confirmations", headers=tenant.headers(alice_key))).json()
    assert [c["id"] for c in alice_sees] == [str(confirmation_id)]
    owner_sees = (await client.get("/v1/confirmations", headers=tenant.headers())).json()
    assert str(confirmation_id) in [c["id"] for c in owner_sees]
    approved = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant.headers(alice_key))
    assert approved.json()["status"] == "approved"
