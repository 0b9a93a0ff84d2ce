"""WhatsApp end to end: a signed inbound message → signal → agent turn → reply through the gate.

Two tenants, each with its own WhatsApp number and endpoint, against a fake Graph API on
loopback that checks each number's access token. Nothing crosses: each tenant's message
runs that tenant's turn in that tenant's conversation, once, and the reply waits for that
tenant's human (``whatsapp_send@v1`` is high-impact).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from ipaddress import ip_network
from typing import Any

import pytest
import sqlalchemy as sa

from tenantgate.context import PrincipalKind, Role
from tenantgate.egress import EgressPolicy
from tenantgate.installation import Installation, Outside, Services
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
                     "when": [{"path": "to", "op": "one_of", "value": ["+" + customer]}]}],
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


async def test_each_tenants_message_gets_that_tenants_turn_and_reply_for_confirmation(
    world: tuple[Services, FakeGraph, FakeServer], services: Services
) -> None:
    built, graph, _ = world
    a = await _business(built, services, graph, "shop-a", "Hello from shop A")
    b = await _business(built, services, graph, "shop-b", "Hello from shop B")
    for business, text in ((a, "hi A"), (b, "hi B")):
        headers, body = _inbound(business, text, f"wamid.{business.phone_number_id}")
        first = await built.webhooks.receive("whatsapp", business.endpoint_id, headers, body)
        replayed = await built.webhooks.receive("whatsapp", business.endpoint_id, headers, body)
        assert (len(first.recorded), len(replayed.duplicates)) == (1, 1)
        assert first.tenant_id == business.tenant.id
    await built.signals.drain()
    # whatsapp_send is high-impact: the gate asks a human before any reply goes out, whoever
    # proposes it. Each tenant's confirmation names exactly its own customer and reply.
    assert graph.sent == []
    for business, text, reply in ((a, "hi A", "Hello from shop A"), (b, "hi B", "Hello from shop B")):
        async with built.db.tenant(business.tenant.system) as conn:
            rows = (await conn.execute(sa.text(
                "SELECT s.channel, m.role, m.content FROM tenantgate.messages m JOIN tenantgate.sessions s"
                " ON s.tenant_id = m.tenant_id AND s.id = m.session_id ORDER BY m.seq"))).all()  # fmt: skip
            pending = (await conn.execute(sa.text(
                "SELECT tenant_id, tool, arguments, status FROM tenantgate.confirmations"))).all()  # fmt: skip
            runs = await conn.scalar(sa.text("SELECT count(*) FROM tenantgate.runs"))
        assert [tuple(r) for r in rows] == [("whatsapp", "user", text), ("whatsapp", "assistant", reply)]
        assert [tuple(p) for p in pending] == [
            (
                business.tenant.id,
                "whatsapp_send@v1",
                {
                    "to": "+" + business.customer,
                    "message": reply,
                    "language": "en_US",
                    "template": None,
                    "template_params": [],
                },
                "pending",
            )
        ]
        assert runs == 1  # the replayed delivery started no second turn
