"""Helpers for the console tests: users with console passwords, signing in over HTTP, a waiting run."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Services
from tests.conftest import TenantFixture

PASSWORD = "correct horse battery staple"
CONTACT = "+4930123456"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class ConsoleUser:
    tenant: TenantFixture
    principal_id: uuid.UUID
    name: str
    password: str = PASSWORD


async def owner_user(services: Services, tenant: TenantFixture) -> ConsoleUser:
    """The tenant fixture's owner (named "owner"), with a console password."""
    await services.passwords.set(tenant.system, tenant.owner_id, PASSWORD)
    return ConsoleUser(tenant, tenant.owner_id, "owner")


async def user_with(services: Services, tenant: TenantFixture, name: str, role: Role) -> ConsoleUser:
    principal = await services.principals.create(
        tenant.system, name=name, kind=PrincipalKind.USER, roles=frozenset({role})
    )
    await services.passwords.set(tenant.system, principal.id, PASSWORD)
    return ConsoleUser(tenant, principal.id, name)


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, user: ConsoleUser, password: str | None = None) -> httpx.Response:
    """Load the sign-in form (its CSRF cookie and field), then post the credentials."""
    form = await client.get("/console/login")
    assert form.status_code == 200
    return await client.post(
        "/console/login",
        data={"csrf": csrf_of(form.text), "tenant": user.tenant.tenant.name, "user": user.name,
              "password": user.password if password is None else password},
    )  # fmt: skip


async def page_csrf(client: httpx.AsyncClient, path: str = "/console/approvals") -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def scripted_send_policy() -> dict[str, Any]:
    """A policy whose scripted planner sends a WhatsApp message (confirmation required), then replies."""
    return {
        "packages": [{"package": "basics"}, {"package": "whatsapp"}],
        "grants": [
            {"id": "basics", "tools": ["echo@v1"]},
            {"id": "contacts", "tools": ["whatsapp_send@v1"],
             "when": [{"path": "to", "op": "one_of", "value": [CONTACT]}]},
        ],
        "ai": {"vendors": [], "planner": {"provider": "scripted", "script": [
            {"calls": [{"tool": "whatsapp_send@v1", "arguments": {"to": CONTACT, "message": "hello"}}]},
            {"reply": "Sent."},
        ]}},
    }  # fmt: skip


async def waiting_run(services: Services, api: httpx.AsyncClient, tenant: TenantFixture) -> dict[str, Any]:
    """Start a run that stops at ``awaiting_confirmation``; its turn (run_id, confirmation_id)."""
    await services.policies.set_policy(tenant.system, scripted_send_policy())
    session = await api.post("/v1/sessions", json={"title": "console"}, headers=tenant.headers())
    assert session.status_code == 201, session.text
    turn = await api.post(
        f"/v1/sessions/{session.json()['id']}/messages", json={"content": "Say hello."}, headers=tenant.headers()
    )
    assert turn.status_code == 200, turn.text
    body: dict[str, Any] = turn.json()
    assert body["status"] == "awaiting_confirmation", body
    return body
