"""Redaction where data leaves the boundary: tool results, the model's input, logs, audit, confirmations.

A tool that echoes its credential is the case the known-value registry exists for: the
password below has no recognisable shape, and the stand-in vault deliberately does not
register it, so only the executor's own registration (``ToolCall.credential``) protects it.
Everything runs on the real database; checks read the stored rows with SQL, not just the API.
"""

from __future__ import annotations

import dataclasses
import io
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import BaseModel, Field

from tenantgate.api import create_app
from tenantgate.audit import AuditEvent
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.gate import Boundary, ProposedCall
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging, get_logger
from tenantgate.redact import Redactor
from tenantgate.tools import (
    Capability,
    Credential,
    Executor,
    Outcome,
    ToolCall,
    ToolEffect,
    ToolPackage,
    ToolRegistry,
    ToolResources,
    tool,
)
from tests import fixture_tools
from tests.conftest import TenantFixture, new_tenant

_plugin_log = get_logger("acme.plugin")  # a careless plugin's own logger


class LoginArgs(BaseModel):
    account: str = Field(max_length=100)


class NoteArgs(BaseModel):
    text: str = Field(max_length=2000)


class StandInVault:
    """Opens one shapeless password per tenant; like a buggy vault, it never registers what it opens."""

    def __init__(self) -> None:
        self.passwords: dict[uuid.UUID, str] = {}

    def password(self, tenant_id: uuid.UUID) -> str:
        return self.passwords.setdefault(tenant_id, f"acme pass {secrets.token_hex(6)} horse")

    async def use(
        self, ctx: TenantContext, name: str, *, tool: str, call_id: uuid.UUID, run_id: uuid.UUID | None
    ) -> Credential:
        secret = {"username": "bot", "password": self.password(ctx.tenant_id)}
        return Credential(id=uuid.uuid4(), name=name, kind="basic_auth", provider="acme", secret=secret)

    async def store_refreshed(
        self, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str], *, tool: str, call_id: uuid.UUID
    ) -> None:
        raise AssertionError("not used here")


VAULT = StandInVault()


@tool("acme_login@v1", description="Log in to Acme.", effect=ToolEffect.READ, capabilities={Capability.CREDENTIALS})
async def acme_login(call: ToolCall, args: LoginArgs) -> dict[str, str]:
    password = (await call.credential("acme")).secret["password"]
    _plugin_log.info("acme.login", account=args.account, password_used=password, detail=f"login as bot/{password}")
    return {"status": "ok", "server_said": f"Welcome bot. Your password {password} expires soon."}


@tool("acme_break@v1", description="Fail to log in.", effect=ToolEffect.READ, capabilities={Capability.CREDENTIALS})
async def acme_break(call: ToolCall, args: LoginArgs) -> dict[str, str]:
    password = (await call.credential("acme")).secret["password"]
    raise RuntimeError(f"acme refused the login bot:{password}")


@tool("note@v1", description="Repeat a note.", effect=ToolEffect.READ)
async def note(call: ToolCall, args: NoteArgs) -> dict[str, str]:
    return {"note": args.text}


REGISTRY = ToolRegistry(DeploymentMode.SAAS)
REGISTRY.register_available([acme_login, acme_break, note])
REGISTRY.add_package(ToolPackage("acme", "Acme.", ("acme_login@v1", "acme_break@v1", "note@v1")))
POLICY = {
    "packages": [{"package": "acme"}],
    "grants": [{"id": "acme", "tools": ["acme_login@v1", "acme_break@v1", "note@v1"]}],
}


@pytest.fixture(scope="module")
async def acme(installation: Installation) -> AsyncIterator[Services]:
    """Services whose executor hands tools the stand-in vault, and one redactor for everything."""
    base = Services.build(installation, registry=REGISTRY, redactor=Redactor())
    await base.db.verify()
    await base.start()
    executor = Executor(registry=REGISTRY, resources=ToolResources(credentials=VAULT), redactor=base.redactor)
    boundary = Boundary(gate=base.boundary.gate, executor=executor, confirmations=base.confirmations, audit=base.audit)
    yield dataclasses.replace(base, boundary=boundary)
    await base.stop()


@pytest.fixture(scope="module")
async def acme_app(acme: Services) -> AsyncIterator[FastAPI]:
    app = create_app(acme, dispose_on_shutdown=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def acme_client(acme_app: FastAPI, acme: Services) -> AsyncIterator[httpx.AsyncClient]:
    async def settle(response: httpx.Response) -> None:
        await acme.audit.drain()

    transport = httpx.ASGITransport(app=acme_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tenantgate.test", event_hooks={"response": [settle]}
    ) as client:
        yield client


async def acme_tenant(acme: Services, name: str) -> TenantFixture:
    tenant = await new_tenant(acme, name)
    await acme.policies.set_policy(tenant.system, POLICY)
    return tenant


async def agent_of(services: Services, tenant: TenantFixture) -> TenantContext:
    """An AI execution acting for the tenant's owner: the planner whose next input is the tool result."""
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    return owner.for_ai_execution(uuid.uuid4())


async def stored_audit(services: Services, tenant_id: uuid.UUID) -> str:
    """Every audit payload of the tenant as stored, read as the platform (SQL, not the API)."""
    query = sa.text(
        "SELECT coalesce(string_agg(payload::text, ' '), '') FROM tenantgate.audit_events WHERE tenant_id = :t"
    )
    async with services.db.admin() as conn:
        return str((await conn.execute(query, {"t": tenant_id})).scalar_one())


def logged_to(stream: io.StringIO, services: Services) -> None:
    configure_logging("info", stream=stream, redactor=services.redactor)


async def test_a_tool_echoing_its_credential_reaches_no_caller_model_log_or_audit(
    acme: Services, acme_client: httpx.AsyncClient
) -> None:
    tenant = await acme_tenant(acme, "echo")
    password = VAULT.password(tenant.id)
    stream = io.StringIO()
    logged_to(stream, acme)
    try:
        response = await acme_client.post(
            "/v1/tools/acme_login@v1/call", json={"arguments": {"account": "main"}}, headers=tenant.headers()
        )
        agent = await agent_of(acme, tenant)
        outcome = await acme.boundary.call(agent, ProposedCall("acme_login@v1", {"account": "main"}))
    finally:
        configure_logging("warning")
    assert response.status_code == 200
    assert response.json()["output"] == {
        "status": "ok",
        "server_said": "Welcome bot. Your password [redacted:known_secret] expires soon.",
    }
    assert outcome.result is not None
    model_input = json.dumps(outcome.result.for_model())  # what the planner reads next
    assert "[redacted:known_secret]" in model_input
    logs = stream.getvalue()
    assert "acme.login" in logs
    assert '"password_used": "[redacted:known_secret]"' in logs
    assert "login as bot/[redacted:known_secret]" in logs
    audit = await stored_audit(acme, tenant.id)
    for seen in (response.text, model_input, logs, audit):
        assert password not in seen


async def test_a_failing_tool_quoting_its_credential_is_redacted_in_the_error_and_the_trail(
    acme: Services, acme_client: httpx.AsyncClient
) -> None:
    tenant = await acme_tenant(acme, "fail")
    password = VAULT.password(tenant.id)
    response = await acme_client.post(
        "/v1/tools/acme_break@v1/call", json={"arguments": {"account": "main"}}, headers=tenant.headers()
    )
    assert (response.status_code, response.json()["code"]) == (502, "tool_failed")
    assert response.json()["message"] == "RuntimeError: acme refused the login bot:[redacted:known_secret]"
    audit = await stored_audit(acme, tenant.id)
    assert "acme refused the login bot:[redacted:known_secret]" in audit
    assert password not in response.text
    assert password not in audit


async def test_one_tenants_secret_cannot_be_echoed_out_through_another_tenant(
    acme: Services, acme_client: httpx.AsyncClient
) -> None:
    tenant_a, tenant_b = await acme_tenant(acme, "a"), await acme_tenant(acme, "b")
    opened = await acme_client.post(
        "/v1/tools/acme_login@v1/call", json={"arguments": {"account": "a"}}, headers=tenant_a.headers()
    )
    assert opened.status_code == 200
    stolen = VAULT.password(tenant_a.id)  # suppose tenant B's planner got hold of it somehow
    echoed = await acme_client.post(
        "/v1/tools/note@v1/call", json={"arguments": {"text": f"look: {stolen}"}}, headers=tenant_b.headers()
    )
    assert echoed.json()["output"] == {"note": "look: [redacted:known_secret]"}
    assert stolen not in await stored_audit(acme, tenant_b.id)
    # B's own credential opens as B's, and is redacted just the same; A never sees B's trail.
    own = await acme.boundary.call(await agent_of(acme, tenant_b), ProposedCall("acme_login@v1", {"account": "b"}))
    assert own.result is not None
    assert own.result.outcome is Outcome.SUCCEEDED
    assert VAULT.password(tenant_b.id) not in json.dumps(own.result.for_model())
    assert VAULT.password(tenant_b.id) != stolen


async def test_tenant_rows_of_the_trail_stay_invisible_to_another_tenant_at_sql_level(acme: Services) -> None:
    tenant_a, tenant_b = await acme_tenant(acme, "rls-a"), await acme_tenant(acme, "rls-b")
    done = await acme.boundary.call(await agent_of(acme, tenant_a), ProposedCall("acme_login@v1", {"account": "a"}))
    assert done.result is not None
    query = sa.text("SELECT count(*) FROM tenantgate.audit_events WHERE tenant_id = :t")
    async with acme.db.tenant(tenant_b.system) as conn:
        assert (await conn.execute(query, {"t": tenant_a.id})).scalar_one() == 0
    async with acme.db.tenant(tenant_a.system) as conn:
        assert (await conn.execute(query, {"t": tenant_a.id})).scalar_one() > 0


async def test_audit_payloads_are_redacted_before_they_are_hashed_and_stored(acme: Services) -> None:
    tenant = await acme_tenant(acme, "audit")
    token = "ghp_" + secrets.token_hex(18)
    record = await acme.audit.record(
        tenant.system,
        AuditEvent("test.recorded", payload={"detail": f"upstream token {token}", "headers": {"Cookie": "sid=1"}}),
    )
    assert dict(record.payload or {}) == {
        "detail": "upstream token [redacted:github_token]",
        "headers": {"Cookie": "[redacted:key_name]"},
    }
    assert token not in await stored_audit(acme, tenant.id)
    report = await acme.audit.verify(tenant.id)
    assert report.ok  # the chain holds over the redacted payload


# --- confirmations, on the shared services and their fixture tools -------------------------------


async def test_stored_confirmation_arguments_are_redacted_but_bind_the_exact_call(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    policy: dict[str, Any] = {
        "packages": [{"package": "whatsapp"}],
        "grants": [{"id": "contacts", "tools": ["whatsapp_send@v1"]}],
    }
    await services.policies.set_policy(tenant_a.system, policy)
    token = "sk_live_" + secrets.token_hex(12)
    args = {"to": "+4930123456", "message": f"Your API key is {token}"}
    call = {"arguments": args}
    pending = await client.post("/v1/tools/whatsapp_send@v1/call", json=call, headers=tenant_a.headers())
    assert pending.status_code == 202
    confirmation_id = pending.json()["confirmation_id"]

    shown = (await client.get(f"/v1/confirmations/{confirmation_id}", headers=tenant_a.headers())).json()
    assert shown["arguments"] == {"to": "+4930123456", "message": "Your API key is [redacted:stripe_key]"}
    async with services.db.admin() as conn:
        row = sa.text("SELECT arguments::text FROM tenantgate.confirmations WHERE id = :id")
        assert token not in (await conn.execute(row, {"id": uuid.UUID(confirmation_id)})).scalar_one()

    approved = await client.post(f"/v1/confirmations/{confirmation_id}/approve", headers=tenant_a.headers())
    assert approved.json()["status"] == "approved"
    sent = await client.post(
        "/v1/tools/whatsapp_send@v1/call", json={**call, "confirmation_id": confirmation_id}, headers=tenant_a.headers()
    )
    assert sent.status_code == 200
    ran = [a for t, name, a in fixture_tools.EXECUTED if t == str(tenant_a.id) and name == "whatsapp_send@v1"]
    assert ran == [args]  # the tool got the real message; only the stored copy is redacted
    assert token not in await stored_audit(services, tenant_a.id)


async def test_another_tenant_cannot_read_a_confirmation_even_redacted(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    await services.policies.set_policy(
        tenant_a.system,
        {"packages": [{"package": "whatsapp"}], "grants": [{"id": "c", "tools": ["whatsapp_send@v1"]}]},
    )
    args = {"to": "+4930123456", "message": "password=hunter22 please"}
    pending = await client.post("/v1/tools/whatsapp_send@v1/call", json={"arguments": args}, headers=tenant_a.headers())
    confirmation_id = pending.json()["confirmation_id"]
    other = await client.get(f"/v1/confirmations/{confirmation_id}", headers=tenant_b.headers())
    assert (other.status_code, other.json()["code"]) == (404, "not_found")
    async with services.db.tenant(tenant_b.system) as conn:
        query = sa.text("SELECT count(*) FROM tenantgate.confirmations WHERE id = :id")
        assert (await conn.execute(query, {"id": uuid.UUID(confirmation_id)})).scalar_one() == 0


async def test_the_installation_shares_one_redactor_between_tools_and_audit(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    # What the vault registers through ``services.redactor.known`` is redacted by the executor
    # and by the audit log alike: one pipeline, one registry, built once by Services.build.
    value = "vault-registered " + secrets.token_hex(6)
    services.redactor.known.add(value)
    await services.policies.set_policy(
        tenant_a.system, {"packages": [{"package": "basics"}], "grants": [{"id": "b", "tools": ["echo@v1"]}]}
    )
    echoed = await client.post(
        "/v1/tools/echo@v1/call", json={"arguments": {"text": f"it is {value}"}}, headers=tenant_a.headers()
    )
    assert echoed.json()["output"] == {"text": "it is [redacted:known_secret]"}
    await services.audit.record(tenant_a.system, AuditEvent("test.recorded", payload={"said": value}))
    assert value not in await stored_audit(services, tenant_a.id)
