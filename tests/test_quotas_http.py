"""Quotas over HTTP: 429 with Retry-After and RateLimit-* headers, usage, platform limits, auth-failure limits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tenantgate.installation import Services
from tests.conftest import TenantFixture

POLICY: dict[str, Any] = {"packages": [{"package": "basics"}], "grants": [{"id": "b", "tools": ["echo@v1"]}]}


@pytest.fixture
async def operator(services: Services) -> dict[str, str]:
    _, key = await services.platform_keys.create(f"quotas-{uuid.uuid4().hex[:6]}")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def elsewhere(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client from its own source address (a label in the ASGI scope; nothing is dialled)."""
    transport = httpx.ASGITransport(app=app, client=(f"192.0.2.{uuid.uuid4().int % 250 + 1}", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test") as c:
        yield c


async def test_a_spent_budget_answers_429_with_retry_after(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, operator: dict[str, str]
) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    put = await client.put(
        f"/v1/platform/tenants/{tenant_a.id}/limits", json={"overrides": {"tool_calls_per_day": 1}}, headers=operator
    )
    assert put.status_code == 200
    assert put.json()["limits"]["tool_calls_per_day"] == 1
    call = {"arguments": {"text": "hi"}}
    assert (await client.post("/v1/tools/echo@v1/call", json=call, headers=tenant_a.headers())).status_code == 200
    refused = await client.post("/v1/tools/echo@v1/call", json=call, headers=tenant_a.headers())
    assert refused.status_code == 429
    body = refused.json()
    assert (body["code"], body["details"][0]["limit"]) == ("quota_exceeded", "tool_calls_per_day")
    assert 1 <= int(refused.headers["Retry-After"]) <= 86401
    assert refused.headers["RateLimit-Limit"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    usage = (await client.get("/v1/usage", headers=tenant_a.headers())).json()
    tool_calls = next(b for b in usage["budgets"] if b["limit"] == "tool_calls_per_day")
    assert (tool_calls["used"], tool_calls["max"]) == (1, 1)


async def test_request_rate_per_key_answers_429(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    await services.quotas.plans.set_tenant(tenant_a.id, overrides={"requests_per_minute_per_key": 3})
    statuses = [(await client.get("/v1/usage", headers=tenant_a.headers())).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = await client.get("/v1/usage", headers=tenant_a.headers())
    assert refused.json()["limit"] == "requests_per_minute_per_key"
    assert "Retry-After" in refused.headers


async def test_usage_is_per_tenant_and_the_platform_sees_all(
    client: httpx.AsyncClient,
    services: Services,
    tenant_a: TenantFixture,
    tenant_b: TenantFixture,
    operator: dict[str, str],
) -> None:
    await services.quotas.plans.set_tenant(tenant_a.id, overrides={"tool_calls_per_day": 2})
    await services.quotas.check_tool_call(tenant_a.system, "echo@v1")
    mine = (await client.get("/v1/usage", headers=tenant_b.headers())).json()
    assert mine["tenant_id"] == str(tenant_b.id)
    assert all(b["used"] == 0 for b in mine["budgets"])  # A's spending is not B's
    assert mine["limits"]["tool_calls_per_day"] == 5000  # nor are A's limits
    # Tenants cannot reach the platform's view or set limits, even their own.
    assert (await client.get("/v1/platform/usage", headers=tenant_a.headers())).status_code == 401
    denied = await client.put(
        f"/v1/platform/tenants/{tenant_a.id}/limits",
        json={"overrides": {"tool_calls_per_day": 10**9}},
        headers=tenant_a.headers(),
    )
    assert denied.status_code == 401
    everyone = {u["tenant_id"]: u for u in (await client.get("/v1/platform/usage", headers=operator)).json()}
    a_calls = next(b for b in everyone[str(tenant_a.id)]["budgets"] if b["limit"] == "tool_calls_per_day")
    assert (a_calls["used"], a_calls["max"]) == (1, 2)
    assert str(tenant_b.id) in everyone


async def test_platform_limits_api_validates(
    client: httpx.AsyncClient, tenant_a: TenantFixture, operator: dict[str, str]
) -> None:
    url = f"/v1/platform/tenants/{tenant_a.id}/limits"
    bad = await client.put(url, json={"overrides": {"tokens_forever": 1}}, headers=operator)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")
    assert (await client.put(url, json={"plan": "no-such-plan"}, headers=operator)).status_code == 404
    missing = await client.get(f"/v1/platform/tenants/{uuid.uuid4()}/limits", headers=operator)
    assert missing.status_code == 404
    plan = f"team-{uuid.uuid4().hex[:6]}"
    assert (
        await client.put(f"/v1/platform/plans/{plan}", json={"limits": {"cron_jobs": 50}}, headers=operator)
    ).is_success
    assert (await client.put("/v1/platform/plans/Bad Name", json={"limits": {}}, headers=operator)).status_code == 422
    assigned = (await client.put(url, json={"plan": plan}, headers=operator)).json()
    assert (assigned["plan"], assigned["limits"]["cron_jobs"]) == (plan, 50)
    assert (await client.get(url, headers=operator)).json() == assigned


async def test_auth_failures_are_limited_per_key_prefix_before_verifying(
    elsewhere: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    prefix = tenant_a.owner_key.split("_")[1]
    wrong = {"Authorization": f"Bearer tg_{prefix}_{'x' * 43}"}
    statuses = [(await elsewhere.get("/v1/usage", headers=wrong)).status_code for _ in range(10)]
    assert statuses == [401] * 10
    refused = await elsewhere.get("/v1/usage", headers=wrong)
    assert refused.status_code == 429
    assert refused.json()["limit"] == "auth_failures_per_minute_per_prefix"
    assert "Retry-After" in refused.headers
    # The right key with that prefix is refused too until the window passes: no more guesses.
    assert (await elsewhere.get("/v1/usage", headers=tenant_a.headers())).status_code == 429


async def test_auth_failures_are_limited_per_source_address(elsewhere: httpx.AsyncClient, services: Services) -> None:
    most = services.settings.auth_failures_per_minute_per_address
    statuses = []
    for _ in range(most + 1):
        wrong = {"Authorization": f"Bearer tg_{uuid.uuid4().hex[:12]}_{'y' * 43}"}
        statuses.append((await elsewhere.get("/v1/usage", headers=wrong)).status_code)
    assert statuses == [401] * most + [429]
