"""An approved confirmation resumes the run waiting on it; a denied or expired one ends it.

End to end over HTTP with the scripted planner and the OpenAI planner against the fake provider
(``tests/fake_llm.py``): the run stops ``awaiting_confirmation``, a human approves through
``POST /v1/confirmations/{id}/approve``, and the run continues in the background to its reply
with the held call executed exactly once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantgate.installation import Installation
from tests.conftest import TenantFixture
from tests.test_agent_http import CONTACT, Rig, Wire, kinds, open_rig, ran, run_of, say, session, tenant_with


@pytest.fixture(scope="module")
async def rig(installation: Installation) -> AsyncIterator[Rig]:
    """The agent tests' rig, with the installation's own run time limit."""
    async with open_rig(installation, None) as rig:
        yield rig


@pytest.fixture
async def http(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    rig.openai.reset()
    rig.anthropic.reset()
    transport = httpx.ASGITransport(app=rig.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test", timeout=30) as client:
        yield client


SEND = {"to": CONTACT, "message": "hello"}
FINAL = {"completed", "failed", "cancelled"}
PLANNERS = ["openai", "scripted"]


async def settled(http: httpx.AsyncClient, tenant: TenantFixture, run_id: str) -> dict[str, Any]:
    """The run once it is no longer running or waiting (polled, as a client would)."""
    deadline = time.monotonic() + 20
    while True:
        run = await run_of(http, tenant, run_id)
        if run["status"] in FINAL or time.monotonic() > deadline:
            return run
        await asyncio.sleep(0.02)


async def held_run(rig: Rig, http: httpx.AsyncClient, name: str) -> tuple[Wire, TenantFixture, dict[str, Any]]:
    wire = Wire(name, rig)
    steps: list[Any] = [[("call_1", "whatsapp_send@v1", SEND)], "Sent it."]
    tenant = await tenant_with(rig, wire.planner(steps))
    sid = await session(http, tenant)
    turn = await say(http, tenant, sid, "Say hello on WhatsApp.")
    assert turn["status"] == "awaiting_confirmation"
    return wire, tenant, turn


async def decide(http: httpx.AsyncClient, tenant: TenantFixture, cid: str, verb: str) -> httpx.Response:
    return await http.post(f"/v1/confirmations/{cid}/{verb}", headers=tenant.headers())


@pytest.mark.parametrize("name", PLANNERS)
async def test_approval_resumes_the_run_to_its_reply(rig: Rig, http: httpx.AsyncClient, name: str) -> None:
    wire, tenant, turn = await held_run(rig, http, name)
    assert ran(tenant, "whatsapp_send@v1") == []

    approved = await decide(http, tenant, turn["confirmation_id"], "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"  # the answer does not wait for the run
    run = await settled(http, tenant, turn["run_id"])

    assert (run["status"], run["error_code"]) == ("completed", None)
    assert ran(tenant, "whatsapp_send@v1") == [SEND]  # the held call, exactly once
    events = kinds(run)
    assert events.count("finished") == 2  # the wait, then the end
    resumed = events.index("resumed")
    assert events[resumed - 1] == "finished"
    assert events[resumed + 1 :] == ["tool_call", "decision", "tool_result", "planner", "reply", "finished"]
    assert run["events"][resumed]["data"]["confirmation"] == "approved"
    assert run["steps"] == 2
    confirmation = (await http.get(f"/v1/confirmations/{turn['confirmation_id']}", headers=tenant.headers())).json()
    assert confirmation["status"] == "used"
    messages = (await http.get(f"/v1/sessions/{run['session_id']}/messages", headers=tenant.headers())).json()
    assert messages["messages"][-1]["content"] == "Sent it."
    if name == "openai":
        assert len(wire.server.received) == 2
        result = wire.tool_results(wire.server.received[1].body)["call_1"]
        assert 'outcome="succeeded"' in result
        assert '"status": "sent"' in result


async def test_the_resumed_call_runs_as_the_run_acting_for_its_starter(rig: Rig, http: httpx.AsyncClient) -> None:
    _, tenant, turn = await held_run(rig, http, "scripted")
    await decide(http, tenant, turn["confirmation_id"], "approve")
    await settled(http, tenant, turn["run_id"])

    trail = (await http.get("/v1/audit", headers=tenant.headers(), params={"limit": 200})).json()
    events = trail["events"] if isinstance(trail, dict) else trail
    executed = [e for e in events if e["action"] == "tool.executed" and e["tool"] == "whatsapp_send@v1"]
    assert len(executed) == 1
    assert executed[0]["principal_kind"] == "ai_execution"
    assert executed[0]["acting_for"] == str(tenant.owner_id)
    resumed = [e for e in events if e["action"] == "run.resumed"]
    assert [e["payload"]["run_id"] for e in resumed] == [turn["run_id"]]


@pytest.mark.parametrize("name", PLANNERS)
async def test_denial_ends_the_run_without_asking_the_planner(rig: Rig, http: httpx.AsyncClient, name: str) -> None:
    wire, tenant, turn = await held_run(rig, http, name)
    denied = await decide(http, tenant, turn["confirmation_id"], "deny")
    assert denied.status_code == 200, denied.text
    run = await settled(http, tenant, turn["run_id"])

    assert (run["status"], run["error_code"]) == ("failed", "confirmation_denied")
    assert ran(tenant, "whatsapp_send@v1") == []
    assert kinds(run)[-2:] == ["resumed", "finished"]
    if name == "openai":
        assert len(wire.server.received) == 1


async def test_a_second_approval_or_resume_does_nothing(rig: Rig, http: httpx.AsyncClient) -> None:
    _, tenant, turn = await held_run(rig, http, "scripted")
    first = await decide(http, tenant, turn["confirmation_id"], "approve")
    second = await decide(http, tenant, turn["confirmation_id"], "approve")
    assert (first.status_code, second.status_code) == (200, 409)
    # Every process racing to resume the same run: only one claims it.
    again = await asyncio.gather(*(rig.services.runtime.resume(tenant.id, uuid.UUID(turn["run_id"])) for _ in range(3)))
    run = await settled(http, tenant, turn["run_id"])
    assert run["status"] == "completed"
    assert sum(r is not None for r in again) <= 1
    assert ran(tenant, "whatsapp_send@v1") == [SEND]
    assert kinds(run).count("resumed") == 1


async def test_another_tenant_cannot_approve_the_confirmation(rig: Rig, http: httpx.AsyncClient) -> None:
    _, tenant, turn = await held_run(rig, http, "scripted")
    other = await tenant_with(rig, None)
    refused = await decide(http, other, turn["confirmation_id"], "approve")
    assert refused.status_code == 404
    await asyncio.sleep(0.1)
    run = await run_of(http, tenant, turn["run_id"])
    assert run["status"] == "awaiting_confirmation"
    assert ran(tenant, "whatsapp_send@v1") == []
    assert (await http.get(f"/v1/runs/{turn['run_id']}", headers=other.headers())).status_code == 404


async def test_an_expired_confirmation_ends_the_run_on_the_sweep(rig: Rig, http: httpx.AsyncClient) -> None:
    _, tenant, turn = await held_run(rig, http, "scripted")
    async with rig.services.db.admin() as conn:
        await conn.execute(
            sa.text("UPDATE tenantgate.confirmations SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": turn["confirmation_id"]},
        )
        await conn.execute(
            sa.text("UPDATE tenantgate.run_holds SET expires_at = now() - interval '1 second' WHERE run_id = :id"),
            {"id": turn["run_id"]},
        )
    assert await rig.services.runtime.expire_held() >= 1
    run = await run_of(http, tenant, turn["run_id"])
    assert (run["status"], run["error_code"]) == ("failed", "confirmation_expired")
    assert ran(tenant, "whatsapp_send@v1") == []
    late = await decide(http, tenant, turn["confirmation_id"], "approve")
    assert late.status_code == 409


async def test_the_resumed_run_keeps_its_step_limit(rig: Rig, http: httpx.AsyncClient) -> None:
    wire = Wire("scripted", rig)
    limit = rig.services.settings.agent_step_limit
    steps: list[Any] = [[("call_1", "whatsapp_send@v1", SEND)]]
    steps += [[(f"call_{n}", "echo@v1", {"text": str(n)})] for n in range(2, limit + 5)]
    tenant = await tenant_with(rig, wire.planner(steps))
    sid = await session(http, tenant)
    turn = await say(http, tenant, sid, "Send, then loop.")
    assert (turn["status"], turn["steps"]) == ("awaiting_confirmation", 1)

    await decide(http, tenant, turn["confirmation_id"], "approve")
    run = await settled(http, tenant, turn["run_id"])
    assert (run["status"], run["error_code"], run["steps"]) == ("failed", "step_limit", limit)  # 1 before + the rest
    assert len(ran(tenant, "echo@v1")) == limit - 1
    assert ran(tenant, "whatsapp_send@v1") == [SEND]
