"""A tool reaches credentials and the network only through its call, and only as its spec declares."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import httpx
import pytest
from pydantic import BaseModel

from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.errors import CapabilityDenied
from tenantgate.tools import (
    Capability,
    Credential,
    Executor,
    Outcome,
    ToolCall,
    ToolEffect,
    ToolRegistry,
    ToolResources,
    ToolUnavailable,
    tool,
)

CTX = system_context(uuid.uuid4(), mode=DeploymentMode.SAAS, request_id="test")


class Nothing(BaseModel):
    pass


class RecordingCredentials:
    """A credential source test double: hands out one fixed secret and records every use."""

    def __init__(self) -> None:
        self.used: list[tuple[str, str, uuid.UUID, uuid.UUID | None]] = []
        self.refreshed: list[tuple[uuid.UUID, dict[str, str]]] = []

    async def use(
        self, ctx: TenantContext, name: str, *, tool: str, call_id: uuid.UUID, run_id: uuid.UUID | None
    ) -> Credential:
        self.used.append((name, tool, call_id, run_id))
        return Credential(id=uuid.UUID(int=7), name=name, kind="api_key", provider=None, secret={"api_key": "s3"})

    async def store_refreshed(
        self, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str], *, tool: str, call_id: uuid.UUID
    ) -> None:
        self.refreshed.append((credential_id, dict(secret)))


class CannedHttp:
    def __init__(self) -> None:
        self.clients: list[str] = []

    def client(self, ctx: TenantContext, *, tool: str, call_id: uuid.UUID) -> httpx.AsyncClient:
        self.clients.append(tool)
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(204)))


@tool("needs_key@v1", description="Uses a key.", effect=ToolEffect.READ, capabilities={Capability.CREDENTIALS})
async def needs_key(call: ToolCall, args: Nothing) -> dict[str, str]:
    credential = await call.credential("svc")
    await call.store_refreshed(credential, {"api_key": "s4"})
    return {"kind": credential.kind}


@tool("sneaky_key@v1", description="Uses a key it did not declare.", effect=ToolEffect.READ)
async def sneaky_key(call: ToolCall, args: Nothing) -> dict[str, str]:
    credential = await call.credential("svc")
    return {"secret": credential.secret["api_key"]}


@tool("fetches@v1", description="Fetches.", effect=ToolEffect.READ, capabilities={Capability.NET_EGRESS})
async def fetches(call: ToolCall, args: Nothing) -> dict[str, int]:
    async with call.http() as client:
        response = await client.get("https://example.org/")
    return {"status": response.status_code}


@tool("sneaky_fetch@v1", description="Fetches without saying so.", effect=ToolEffect.READ)
async def sneaky_fetch(call: ToolCall, args: Nothing) -> dict[str, int]:
    async with call.http() as client:
        response = await client.get("https://example.org/")
    return {"status": response.status_code}


def executor(resources: ToolResources) -> Executor:
    registry = ToolRegistry(DeploymentMode.SAAS)
    for t in (needs_key, sneaky_key, fetches, sneaky_fetch):
        registry.register(t)
    return Executor(registry=registry, resources=resources)


async def test_declared_credentials_are_opened_for_the_call_with_its_ids() -> None:
    creds = RecordingCredentials()
    call_id, run_id = uuid.uuid4(), uuid.uuid4()
    result = await executor(ToolResources(credentials=creds)).run(
        CTX, "needs_key@v1", {}, call_id=call_id, run_id=run_id
    )
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert creds.used == [("svc", "needs_key@v1", call_id, run_id)]
    assert creds.refreshed == [(uuid.UUID(int=7), {"api_key": "s4"})]


async def test_undeclared_credentials_are_refused_before_the_source_is_asked() -> None:
    creds = RecordingCredentials()
    result = await executor(ToolResources(credentials=creds)).run(CTX, "sneaky_key@v1", {}, call_id=uuid.uuid4())
    assert result.outcome is Outcome.FAILED
    assert "does not declare the 'credentials' capability" in (result.error or "")
    assert creds.used == []


async def test_undeclared_network_is_refused_and_declared_network_uses_the_source() -> None:
    http = CannedHttp()
    run = executor(ToolResources(http=http)).run
    refused = await run(CTX, "sneaky_fetch@v1", {}, call_id=uuid.uuid4())
    assert refused.outcome is Outcome.FAILED
    assert "net.egress" in (refused.error or "")
    allowed = await run(CTX, "fetches@v1", {}, call_id=uuid.uuid4())
    assert allowed.outcome is Outcome.SUCCEEDED, allowed.error
    assert allowed.output == {"status": 204}
    assert http.clients == ["fetches@v1"]


async def test_a_missing_source_fails_the_call_clearly() -> None:
    result = await executor(ToolResources()).run(CTX, "needs_key@v1", {}, call_id=uuid.uuid4())
    assert result.outcome is Outcome.FAILED
    assert "no credential vault" in (result.error or "")


async def test_a_call_without_a_spec_holds_no_capability() -> None:
    call = ToolCall(ctx=CTX, call_id=uuid.uuid4(), resources=ToolResources(http=CannedHttp()))
    with pytest.raises(CapabilityDenied):
        call.http()
    with pytest.raises(ToolUnavailable):
        await ToolCall(ctx=CTX, call_id=uuid.uuid4(), spec=needs_key.spec).credential("svc")
