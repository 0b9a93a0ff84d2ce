"""The MCP server at ``/mcp``, driven by the official SDK's client against the app served by uvicorn.

Every call goes through the same boundary as ``POST /v1/tools/{name}/call``: the assertions read
what actually ran (``fixture_tools.EXECUTED``), the confirmations, and the audit trail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import jwt
import mcp_types as types
import pytest
import uvicorn
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tenantgate.api import create_app
from tenantgate.config import JwtIssuerConfig, JwtKeyConfig
from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Installation, Services
from tests import fixture_tools
from tests.conftest import TenantFixture, new_tenant

CONTACT = "+4930123456"
SEND = {"to": CONTACT, "message": "hello"}
ISSUER, AUDIENCE, SECRET = "https://idp.mcp.test", "tenantgate-mcp", "s" * 40


@dataclass
class Served:
    services: Services
    url: str  # http://127.0.0.1:<port>


@pytest.fixture(scope="module")
async def served(installation: Installation) -> AsyncIterator[Served]:
    issuer = JwtIssuerConfig(issuer=ISSUER, audience=AUDIENCE, algorithms=("HS256",),
                             keys=(JwtKeyConfig(secret=SECRET),))  # fmt: skip
    settings = installation.settings.model_copy(update={"jwt_issuers": (issuer,)})
    services = Services.build(
        dataclasses.replace(installation, settings=settings), registry=fixture_tools.registry(settings.mode)
    )
    app = create_app(services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the server failed to start: show why
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(services, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


def policy(*, whatsapp: bool) -> dict[str, Any]:
    grants: list[dict[str, Any]] = [{"id": "basics", "tools": ["echo@v1", "crash@v1"]}]
    if whatsapp:
        grants.append({"id": "contacts", "tools": ["whatsapp_send@v1"],
                       "when": [{"path": "to", "op": "one_of", "value": [CONTACT]}]})  # fmt: skip
    return {"packages": [{"package": "basics"}, {"package": "whatsapp"}], "grants": grants}


async def tenant(served: Served, *, whatsapp: bool = True) -> TenantFixture:
    created = await new_tenant(served.services, "mcp")
    await served.services.policies.set_policy(created.system, policy(whatsapp=whatsapp))
    return created


@asynccontextmanager
async def mcp_session(served: Served, key: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client,
        streamable_http_client(f"{served.url}/mcp", http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def ran(t: TenantFixture, tool: str) -> list[dict[str, Any]]:
    return [args for tid, name, args in fixture_tools.EXECUTED if tid == str(t.id) and name == tool]


def structured(result: types.CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def api(served: Served, method: str, path: str, t: TenantFixture, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        return await client.request(method, path, headers=t.headers(), **kw)


# --- listing and calling ----------------------------------------------------------------------


async def test_tools_list_is_what_the_caller_may_use_with_schemas(served: Served) -> None:
    a, b = await tenant(served), await tenant(served, whatsapp=False)
    async with mcp_session(served, a.owner_key) as session:
        listed_a = (await session.list_tools()).tools
    async with mcp_session(served, b.owner_key) as session:
        listed_b = (await session.list_tools()).tools

    # Installed and granted: echo, crash (and whatsapp_send for A). Installed, not granted: not offered.
    assert sorted(t.name for t in listed_a) == ["crash__v1", "echo__v1", "whatsapp_send__v1"]
    assert sorted(t.name for t in listed_b) == ["crash__v1", "echo__v1"]
    echo = next(t for t in listed_a if t.name == "echo__v1")
    assert echo.title == "echo@v1"
    assert echo.input_schema["properties"]["text"]["type"] == "string"
    assert echo.input_schema["required"] == ["text"]
    assert "_confirmation_id" in echo.input_schema["properties"]
    assert echo.annotations is not None
    assert echo.annotations.read_only_hint is True


async def test_a_kill_switch_takes_the_tool_off_the_list(served: Served) -> None:
    a = await tenant(served)
    switched = await api(served, "POST", "/v1/kill-switches", a,
                         json={"scope": "tool", "target": "echo@v1", "reason": "test"})  # fmt: skip
    assert switched.status_code == 201, switched.text
    async with mcp_session(served, a.owner_key) as session:
        names = [t.name for t in (await session.list_tools()).tools]
        denied = await session.call_tool("echo__v1", {"text": "hi"})
    assert "echo__v1" not in names
    assert denied.is_error
    assert structured(denied)["code"] == "kill_switch"
    assert ran(a, "echo@v1") == []


async def test_a_call_runs_through_the_boundary(served: Served) -> None:
    a = await tenant(served)
    async with mcp_session(served, a.owner_key) as session:
        result = await session.call_tool("echo__v1", {"text": "hi there"})
        by_name = await session.call_tool("echo@v1", {"text": "again"})

    assert not result.is_error
    body = structured(result)
    assert (body["outcome"], body["output"], body["untrusted"]) == ("succeeded", {"text": "hi there"}, True)
    assert isinstance(result.content[0], types.TextContent)
    assert '"hi there"' in result.content[0].text
    assert structured(by_name)["output"] == {"text": "again"}
    assert ran(a, "echo@v1") == [{"text": "hi there"}, {"text": "again"}]


async def test_denials_are_tool_errors_with_their_code(served: Served) -> None:
    a = await tenant(served)
    async with mcp_session(served, a.owner_key) as session:
        not_granted = await session.call_tool("whoami_tool__v1", {})
        unknown = await session.call_tool("rm_rf__v1", {"path": "/"})
        bad_args = await session.call_tool("echo__v1", {"text": "x", "shell": "ls"})
        off_list = await session.call_tool("whatsapp_send__v1", {"to": "+4911111111", "message": "hi"})
        failed = await session.call_tool("crash__v1", {})

    cases = [(not_granted, "not_granted"), (unknown, "unknown_tool"), (bad_args, "invalid_arguments"),
             (off_list, "argument_denied"), (failed, "tool_failed")]  # fmt: skip
    for result, code in cases:
        assert result.is_error, code
        assert structured(result)["code"] == code
        assert code in result.content[0].text if isinstance(result.content[0], types.TextContent) else False
    assert ran(a, "whoami_tool@v1") == []
    assert ran(a, "echo@v1") == []
    assert ran(a, "whatsapp_send@v1") == []


# --- confirmations ----------------------------------------------------------------------------


async def test_a_confirmation_then_approval_then_the_call_runs_once(served: Served) -> None:
    a = await tenant(served)
    async with mcp_session(served, a.owner_key) as session:
        waiting = await session.call_tool("whatsapp_send__v1", SEND)
        body = structured(waiting)
        assert (waiting.is_error, body["status"], body["code"]) == (False, "awaiting_confirmation",
                                                                   "confirmation_required")  # fmt: skip
        cid = body["confirmation_id"]
        assert isinstance(waiting.content[0], types.TextContent)
        assert cid in waiting.content[0].text
        assert ran(a, "whatsapp_send@v1") == []

        early = await session.call_tool("whatsapp_send__v1", {**SEND, "_confirmation_id": cid})
        assert structured(early)["code"] == "confirmation_invalid"  # not approved yet

        approved = await api(served, "POST", f"/v1/confirmations/{cid}/approve", a)
        assert approved.status_code == 200, approved.text
        other_args = await session.call_tool("whatsapp_send__v1", {**SEND, "message": "else", "_confirmation_id": cid})
        sent = await session.call_tool("whatsapp_send__v1", {**SEND, "_confirmation_id": cid})
        again = await session.call_tool("whatsapp_send__v1", {**SEND, "_confirmation_id": cid})

    assert structured(other_args)["code"] == "confirmation_invalid"  # bound to the exact arguments
    assert not sent.is_error
    assert structured(sent)["output"] == {"status": "sent", "to": CONTACT}
    assert structured(again)["code"] == "confirmation_invalid"  # used
    assert ran(a, "whatsapp_send@v1") == [SEND]


async def test_the_confirmation_id_can_ride_in_meta(served: Served) -> None:
    a = await tenant(served)
    async with mcp_session(served, a.owner_key) as session:
        cid = structured(await session.call_tool("whatsapp_send__v1", SEND))["confirmation_id"]
        assert (await api(served, "POST", f"/v1/confirmations/{cid}/approve", a)).status_code == 200
        sent = await session.call_tool("whatsapp_send__v1", SEND, meta={"tenantgate/confirmation_id": cid})
    assert structured(sent)["outcome"] == "succeeded"
    assert ran(a, "whatsapp_send@v1") == [SEND]


async def test_another_tenant_cannot_use_or_approve_the_confirmation(served: Served) -> None:
    a, b = await tenant(served), await tenant(served)
    async with mcp_session(served, a.owner_key) as session:
        cid = structured(await session.call_tool("whatsapp_send__v1", SEND))["confirmation_id"]
    assert (await api(served, "POST", f"/v1/confirmations/{cid}/approve", b)).status_code == 404
    assert (await api(served, "POST", f"/v1/confirmations/{cid}/approve", a)).status_code == 200
    async with mcp_session(served, b.owner_key) as session:
        stolen = await session.call_tool("whatsapp_send__v1", {**SEND, "_confirmation_id": cid})
    assert structured(stolen)["code"] == "confirmation_invalid"
    assert ran(b, "whatsapp_send@v1") == []
    async with mcp_session(served, a.owner_key) as session:  # still A's to use, once
        sent = await session.call_tool("whatsapp_send__v1", {**SEND, "_confirmation_id": cid})
    assert structured(sent)["outcome"] == "succeeded"


# --- authentication and audit -------------------------------------------------------------------

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("authorization", [None, "Bearer tg_nope_notakey", "Bearer not-even-a-jwt", "Basic abc"])
async def test_no_or_bad_token_is_401_before_mcp(served: Served, authorization: str | None) -> None:
    headers = dict(HEADERS) | ({"Authorization": authorization} if authorization else {})
    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.post("/mcp", json=INITIALIZE, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "jsonrpc" not in response.text


async def test_a_jwt_is_a_bearer_token_too(served: Served) -> None:
    a = await tenant(served)
    member = await served.services.principals.create(
        a.system, name="jwt user", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER}), external_id="mcp-user"
    )
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "mcp-user", "tenant_id": str(a.id), "iat": now,
                        "exp": now + 300}, SECRET, algorithm="HS256")  # fmt: skip
    async with mcp_session(served, token) as session:
        names = [t.name for t in (await session.list_tools()).tools]
        done = structured(await session.call_tool("echo__v1", {"text": "jwt"}))
    assert "echo__v1" in names
    assert done["output"] == {"text": "jwt"}
    await served.services.audit.drain()
    trail = (await api(served, "GET", "/v1/audit", a, params={"action": "gate.decided"})).json()["events"]
    decided = next(e for e in trail if e["payload"]["call_id"] == done["call_id"])
    assert decided["principal_id"] == str(member.id)


async def test_the_sdk_client_with_a_bad_key_gets_nothing(served: Served) -> None:
    with pytest.raises(ExceptionGroup) as raised:
        async with mcp_session(served, "tg_bad_" + "x" * 30) as session:
            await session.list_tools()
    assert raised.group_contains(MCPError, depth=None)


async def test_audit_events_carry_the_mcp_call(served: Served) -> None:
    a = await tenant(served)
    async with mcp_session(served, a.owner_key) as session:
        done = structured(await session.call_tool("echo__v1", {"text": "audited"}))
        denied = structured(await session.call_tool("whoami_tool__v1", {}))
    await served.services.audit.drain()
    trail = (await api(served, "GET", "/v1/audit", a, params={"action": "gate.decided"})).json()["events"]
    by_call = {e["payload"]["call_id"]: e for e in trail}
    allowed, refused = by_call[done["call_id"]], by_call[denied["call_id"]]
    assert (allowed["decision"], allowed["tool"], allowed["payload"]["via"]) == ("allow", "echo@v1", "mcp")
    assert (refused["decision"], refused["code"], refused["payload"]["via"]) == ("deny", "not_granted", "mcp")
    assert allowed["principal_id"] == str(a.owner_id)
    executed = (await api(served, "GET", "/v1/audit", a, params={"action": "tool.executed"})).json()["events"]
    assert [e["payload"]["call_id"] for e in executed] == [done["call_id"]]
