"""WhatsApp end to end: signed inbound message → signal → agent turn → directive → reply at the Graph API.

Two tenants, each with its own WhatsApp number and endpoint, against a fake Graph API on
loopback that checks each number's access token. Nothing crosses: each tenant's message
runs that tenant's turn in that tenant's conversation, once, and the channel's reply
(``whatsapp_reply@v1``, channel-only) reaches that tenant's customer from that tenant's
number, once, however often the webhook or the signal is replayed. A kill switch on the
``whatsapp`` integration stops the reply; the model cannot propose the reply tool, and
``whatsapp_send@v1`` to anyone still waits for a human.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantgate.agent import Conversation, Plan, ScriptedPlanner
from tenantgate.api import create_app
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.egress import EgressPolicy
from tenantgate.gate import ProposedCall, SwitchScope
from tenantgate.installation import Installation, Outside, Services
from tenantgate.tools import ToolSpec
from tenantgate.webhooks import sign_whatsapp
from tests.conftest import TenantFixture, new_tenant
from tests.fakes.loopback import HostTable, LoopbackOnly
from tests.fakes.server import FakeServer, Reply, Request

HOST = "graph.facebook.test"
VERSION = "v21.0"


@dataclass(frozen=True)
class Business:
    tenant: TenantFixture
    phone_number_id: str
    token: str
    customer: str
    app_secret: str
    endpoint_id: uuid.UUID


class FakeGraph:
    """``POST /v21.0/{phone_number_id}/messages``: each number answers only to its own token."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 3 or parts[0] != VERSION or parts[2] != "messages":
            return Reply(400, {"error": {"message": "Unsupported post request.", "type": "GraphMethodException",
                                         "code": 100, "error_subcode": 33, "fbtrace_id": "Afake"}})  # fmt: skip
        phone = parts[1]
        if self.tokens.get(phone) is None or request.bearer() != self.tokens[phone]:
            return Reply(401, {"error": {"message": "Error validating access token", "type": "OAuthException",
                                         "code": 190, "fbtrace_id": "Afake"}})  # fmt: skip
        body = request.json()
        self.sent.append((phone, body))
        message_id = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        return Reply(200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"],
                           "wa_id": body["to"].lstrip("+")}], "messages": [{"id": message_id}]})  # fmt: skip


@pytest.fixture
async def world(installation: Installation) -> AsyncIterator[tuple[Services, FakeGraph, FakeServer]]:
    graph = FakeGraph()
    async with FakeServer(graph) as server:
        settings = installation.settings.model_copy(update={"whatsapp_graph_url": server.base(HOST)})
        policy = EgressPolicy(
            allowed_ports=frozenset({server.port}), allowed_private=frozenset({ip_network("127.0.0.1/32")})
        )
        dialled: list[str] = []
        outside = Outside(policy=policy, resolver=HostTable({HOST: "127.0.0.1"}), dialer=lambda: LoopbackOnly(dialled))
        built = Services.build(replace(installation, settings=settings), outside=outside)
        await built.start()
        try:
            yield built, graph, server
        finally:
            await built.stop()


async def _business(built: Services, services: Services, graph: FakeGraph, name: str, reply: str) -> Business:
    tenant = await new_tenant(services, name)
    phone, customer = str(10**14 + secrets.randbelow(10**14)), "1631555" + str(1000 + secrets.randbelow(9000))
    token, app_secret = "EAAG" + secrets.token_urlsafe(24), secrets.token_hex(16)
    graph.tokens[phone] = token
    await built.credentials.create(tenant.system, name="whatsapp", kind="oauth", provider="whatsapp",
                                   secret={"access_token": token}, metadata={"phone_number_id": phone})  # fmt: skip
    await built.policies.set_policy(
        tenant.system,
        {"packages": [{"package": "whatsapp"}],
         "grants": [{"id": "customers", "tools": ["whatsapp_send@v1"], "kinds": ["ai_execution", "service_account"],
                     "when": [{"path": "to", "op": "one_of", "value": ["+" + customer]}]},
                    {"id": "replies", "tools": ["whatsapp_reply@v1"], "kinds": ["ai_execution", "service_account"]}],
         "ai": {"planner": {"provider": "scripted", "script": [{"reply": reply}]}}},
    )  # fmt: skip
    bot = await services.principals.create(
        tenant.system, name="whatsapp-bot", kind=PrincipalKind.SERVICE_ACCOUNT, roles=frozenset({Role.MEMBER})
    )
    endpoint = await built.webhooks.endpoints.create(
        tenant.system, provider="whatsapp", secret=app_secret, verify_token="vt-" + name, phone_number_id=phone,
        principal_id=bot.id,
    )  # fmt: skip
    return Business(tenant, phone, token, customer, app_secret, endpoint.id)


def _inbound(business: Business, text: str, message_id: str) -> tuple[dict[str, str], bytes]:
    body = json.dumps(
        {"object": "whatsapp_business_account",
         "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
             "messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": business.phone_number_id},
             "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": business.customer}],
             "messages": [{"from": business.customer, "id": message_id, "timestamp": str(int(time.time())),
                           "type": "text", "text": {"body": text}}]}}]}]}
    ).encode()  # fmt: skip
    return {"X-Hub-Signature-256": sign_whatsapp(business.app_secret, body)}, body


async def _deliver(built: Services, business: Business, text: str, message_id: str) -> uuid.UUID:
    """Post the signed delivery twice (providers redeliver): one signal, one duplicate."""
    headers, body = _inbound(business, text, message_id)
    first = await built.webhooks.receive("whatsapp", business.endpoint_id, headers, body)
    replayed = await built.webhooks.receive("whatsapp", business.endpoint_id, headers, body)
    assert (first.tenant_id, len(first.recorded), replayed.duplicates) == (business.tenant.id, 1, first.recorded)
    return first.recorded[0]


def _reply_body(business: Business, message_id: str, text: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+" + business.customer,
            "context": {"message_id": message_id}, "type": "text", "text": {"body": text}}  # fmt: skip


async def _rows(built: Services, business: Business, query: str) -> list[tuple[Any, ...]]:
    async with built.db.tenant(business.tenant.system) as conn:
        return [tuple(r) for r in (await conn.execute(sa.text(query))).all()]


async def test_each_tenants_message_gets_that_tenants_turn_and_reply_at_the_graph_api(
    world: tuple[Services, FakeGraph, FakeServer], services: Services
) -> None:
    built, graph, _ = world
    a = await _business(built, services, graph, "shop-a", "Hello from shop A")
    b = await _business(built, services, graph, "shop-b", "Hello from shop B")
    signals = {}
    for business, text in ((a, "hi A"), (b, "hi B")):
        signals[business.phone_number_id] = await _deliver(built, business, text, f"wamid.{business.phone_number_id}")
    await built.signals.drain()

    # Each reply left from its tenant's own number, with its own token, to its own customer,
    # as a reply to the inbound message: exactly one each.
    assert sorted(graph.sent, key=lambda s: s[0]) == sorted(
        [(a.phone_number_id, _reply_body(a, f"wamid.{a.phone_number_id}", "Hello from shop A")),
         (b.phone_number_id, _reply_body(b, f"wamid.{b.phone_number_id}", "Hello from shop B"))],
        key=lambda s: s[0],
    )  # fmt: skip
    for business, text, reply in ((a, "hi A", "Hello from shop A"), (b, "hi B", "Hello from shop B")):
        rows = await _rows(built, business,
            "SELECT s.channel, m.role, m.content FROM tenantgate.messages m JOIN tenantgate.sessions s"
            " ON s.tenant_id = m.tenant_id AND s.id = m.session_id ORDER BY m.seq")  # fmt: skip
        assert rows == [("whatsapp", "user", text), ("whatsapp", "assistant", reply)]
        directives = await _rows(built, business,
            "SELECT tenant_id, tool, idempotency_key, status, principal_kind, arguments->>'to'"
            " FROM tenantgate.directives")  # fmt: skip
        key = f"whatsapp-reply:wamid.{business.phone_number_id}"
        assert directives == [
            (business.tenant.id, "whatsapp_reply@v1", key, "succeeded", "ai_execution", "+" + business.customer)
        ]
        assert await _rows(built, business, "SELECT tenant_id FROM tenantgate.confirmations") == []
        executed = await _rows(built, business,
            "SELECT tool, decision FROM tenantgate.audit_events WHERE action = 'tool.executed'")  # fmt: skip
        assert executed == [("whatsapp_reply@v1", "succeeded")]

    # Replays of the signal (a worker re-running it, an operator replaying a range) send nothing
    # again, even when the signal looks unprocessed: the directive's key is the inbound message id.
    for business in (a, b):
        await built.signals.process(business.tenant.id, signals[business.phone_number_id])
        async with built.db.tenant(business.tenant.system) as conn:
            await conn.execute(sa.text("UPDATE tenantgate.signals SET processed_at = NULL"))
        await built.signals.process(business.tenant.id, signals[business.phone_number_id])
        assert await _rows(built, business, "SELECT count(*) FROM tenantgate.runs") == [(1,)]
    assert len(graph.sent) == 2

    # SQL level: under A's row-level security, B's signals, directives and messages do not exist.
    async with built.db.tenant(a.tenant.system) as conn:
        for table in ("signals", "directives", "messages", "sessions", "runs"):
            others = await conn.scalar(
                sa.text(f"SELECT count(*) FROM tenantgate.{table} WHERE tenant_id = :b"), {"b": b.tenant.id}
            )
            assert others == 0, table


async def test_a_kill_switch_on_the_whatsapp_integration_stops_the_reply(
    world: tuple[Services, FakeGraph, FakeServer], services: Services
) -> None:
    built, graph, _ = world
    a = await _business(built, services, graph, "shop-a", "Hello from shop A")
    b = await _business(built, services, graph, "shop-b", "Hello from shop B")
    await built.policies.set_tenant_switch(
        a.tenant.system, SwitchScope.INTEGRATION, "whatsapp", reason="provider outage", set_by="ops"
    )
    await _deliver(built, a, "hi A", "wamid.killed")
    await _deliver(built, b, "hi B", "wamid.alive")
    await built.signals.drain()
    # A's switch stops A's reply only; B (no switch) is answered.
    assert graph.sent == [(b.phone_number_id, _reply_body(b, "wamid.alive", "Hello from shop B"))]
    decided = await _rows(built, a,
        "SELECT tool, decision, code FROM tenantgate.audit_events WHERE action = 'gate.decided'")  # fmt: skip
    assert decided == [("whatsapp_reply@v1", "deny", "kill_switch")]
    assert await _rows(built, a, "SELECT count(*) FROM tenantgate.directives") == [(0,)]


async def test_the_model_cannot_propose_the_reply_and_its_sends_still_need_a_human(
    world: tuple[Services, FakeGraph, FakeServer], services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    built, graph, _ = world
    offered: list[list[str]] = []
    plan = ScriptedPlanner.plan

    async def recording(self: ScriptedPlanner, conversation: Conversation, tools: Sequence[ToolSpec]) -> Plan:
        offered.append(sorted(t.name for t in tools))
        return await plan(self, conversation, tools)

    monkeypatch.setattr(ScriptedPlanner, "plan", recording)
    stranger = "+4930" + str(1000000 + secrets.randbelow(8999999))
    a = await _business(built, services, graph, "shop-a", "Hello from shop A")
    # The model tries the reply tool on a number of its choosing, from the tenant's own number.
    a_phone_spam = {"to": stranger, "reply_to": "wamid.x", "phone_number_id": a.phone_number_id, "message": "buy now"}
    await built.policies.set_policy(
        a.tenant.system,
        {"packages": [{"package": "whatsapp"}],
         "grants": [{"id": "replies", "tools": ["whatsapp_reply@v1", "whatsapp_send@v1"],
                     "kinds": ["ai_execution", "service_account"]}],
         "ai": {"planner": {"provider": "scripted", "script": [
             {"calls": [{"tool": "whatsapp_reply@v1", "arguments": a_phone_spam}]}, {"reply": "Hello from shop A"}]}}},
    )  # fmt: skip
    await _deliver(built, a, "hi A", "wamid.first")
    await built.signals.drain()
    # The model's proposal was refused before anything; the channel's own reply went to the customer only.
    assert graph.sent == [(a.phone_number_id, _reply_body(a, "wamid.first", "Hello from shop A"))]
    decided = await _rows(built, a, "SELECT tool, decision, code FROM tenantgate.audit_events"
                                    " WHERE action = 'gate.decided' ORDER BY seq")  # fmt: skip
    assert decided == [("whatsapp_reply@v1", "deny", "channel_only"), ("whatsapp_reply@v1", "allow", "allowed")]
    assert offered == [["whatsapp_send@v1"], ["whatsapp_send@v1"]]  # the planner is never offered the reply tool

    # A model that writes to anyone proposes whatsapp_send: high-impact, so a human confirms first,
    # and the turn, waiting for that human, sends the customer nothing.
    send = {"to": stranger, "message": "buy now"}
    await built.policies.set_policy(
        a.tenant.system,
        {"packages": [{"package": "whatsapp"}],
         "grants": [{"id": "replies", "tools": ["whatsapp_reply@v1", "whatsapp_send@v1"],
                     "kinds": ["ai_execution", "service_account"]}],
         "ai": {"planner": {"provider": "scripted", "script": [
             {"calls": [{"tool": "whatsapp_send@v1", "arguments": send}]}, {"reply": "never sent"}]}}},
    )  # fmt: skip
    await _deliver(built, a, "hi again", "wamid.second")
    await built.signals.drain()
    assert len(graph.sent) == 1
    pending = await _rows(built, a, "SELECT tool, arguments->>'to', status FROM tenantgate.confirmations")
    assert pending == [("whatsapp_send@v1", stranger, "pending")]

    # Over HTTP no client proposes the reply tool either (an owner included); it is listed, marked.
    app = create_app(built, dispose_on_shutdown=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test") as client:
            refused = await client.post(
                "/v1/tools/whatsapp_reply@v1/call", json={"arguments": a_phone_spam}, headers=a.tenant.headers()
            )
            listed = await client.get("/v1/tools", headers=a.tenant.headers())
    assert (refused.status_code, refused.json()["code"]) == (403, "channel_only")
    assert {t["name"]: t["channel_only"] for t in listed.json()["tools"]} == {
        "whatsapp_send@v1": False,
        "whatsapp_reply@v1": True,
    }
    assert len(graph.sent) == 1


async def test_a_reply_never_leaves_from_another_number_than_the_conversations(
    world: tuple[Services, FakeGraph, FakeServer], services: Services
) -> None:
    built, graph, _ = world
    a = await _business(built, services, graph, "shop-a", "Hello from shop A")
    b = await _business(built, services, graph, "shop-b", "Hello from shop B")
    bot = await services.principals.create(
        a.tenant.system, name="relay", kind=PrincipalKind.SERVICE_ACCOUNT, roles=frozenset({Role.MEMBER})
    )
    ctx = TenantContext(tenant_id=a.tenant.id, principal_id=bot.id, kind=PrincipalKind.SERVICE_ACCOUNT,
                        roles=frozenset({Role.MEMBER}), mode=a.tenant.system.mode, request_id="t")  # fmt: skip
    # B's number as the conversation's: A's credential (A's number and token) must not answer it.
    reply = {"to": "+" + b.customer, "reply_to": "wamid.b", "phone_number_id": b.phone_number_id, "message": "hi"}
    outcome = await built.boundary.call(ctx, ProposedCall(tool="whatsapp_reply@v1", arguments=reply), channel=True)
    assert outcome.result is not None
    assert outcome.result.outcome.value == "failed"
    assert "another phone number" in (outcome.result.error or "")
    assert graph.sent == []
