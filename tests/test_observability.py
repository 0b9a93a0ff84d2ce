"""``/metrics`` (counters moving, the tenant-label rule, the token, loopback) and OpenTelemetry spans."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from tenantgate.api import create_app
from tenantgate.audit import AuditEvent
from tenantgate.installation import Installation, Services
from tenantgate.tracing import configure_tracing, span
from tests import fixture_tools
from tests.conftest import TenantFixture, new_tenant

TOKEN = "metrics-" + "t" * 40
POLICY = {"packages": [{"package": "basics"}], "grants": [{"id": "basics", "tools": ["echo@v1"]}]}


def _value(text: str, name: str, **labels: str) -> float:
    """The sample of ``name`` whose labels include ``labels`` (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")])) if "{" in line else {}
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
async def labelled(
    installation: Installation, services: Services
) -> AsyncIterator[tuple[FastAPI, Services, TenantFixture, TenantFixture]]:
    """A process that labels one named tenant, with a metrics token."""
    named = await new_tenant(services, "named")
    unnamed = await new_tenant(services, "unnamed")
    for tenant in (named, unnamed):
        await services.policies.set_policy(tenant.system, POLICY)
    settings = installation.settings.model_copy(
        update={"metrics_token": SecretStr(TOKEN), "metrics_tenant_labels": (named.tenant.name, "no-such-tenant")}
    )
    built = Services.build(replace(installation, settings=settings), registry=fixture_tools.registry(settings.mode))
    app = create_app(built)
    async with app.router.lifespan_context(app):
        yield app, built, named, unnamed


def _client(app: FastAPI, *, client: tuple[str, int] = ("127.0.0.1", 50000), base: str = "http://tenantgate.test"):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client), base_url=base)


async def _scrape(app: FastAPI) -> str:
    async with _client(app) as client:
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_requests_decisions_and_tools_with_tenant_labels_only_where_configured(
    labelled: tuple[FastAPI, Services, TenantFixture, TenantFixture],
) -> None:
    app, built, named, unnamed = labelled
    before = await _scrape(app)
    async with _client(app) as client:
        for tenant in (named, unnamed):
            ok = await client.post(
                "/v1/tools/echo@v1/call", headers=tenant.headers(), json={"arguments": {"text": "x"}}
            )
            assert ok.status_code == 200
            denied = await client.post("/v1/tools/shell@v1/call", headers=tenant.headers(), json={"arguments": {}})
            assert denied.status_code == 403
    await built.audit.drain()
    after = await _scrape(app)
    label = named.tenant.name

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("tenantgate_tool_executions_total", tool="echo@v1", outcome="succeeded", tenant=label) == 1
    assert moved("tenantgate_tool_executions_total", tool="echo@v1", outcome="succeeded", tenant="") == 1
    assert moved("tenantgate_gate_decisions_total", effect="deny", code="capability_denied", tenant=label) == 1
    assert moved("tenantgate_gate_decisions_total", effect="allow", code="allowed", tenant="") == 1
    assert moved("tenantgate_tool_duration_seconds_count", tool="echo@v1") == 2
    assert moved("tenantgate_audit_append_seconds_count") >= 4
    assert moved("tenantgate_http_requests_total", method="POST", route="/v1/tools/{name}/call", status="200") == 2
    assert moved("tenantgate_http_requests_total", method="POST", route="/v1/tools/{name}/call", status="403") == 2
    # The unnamed tenant appears nowhere: no label, no id, no name; no raw path becomes a label.
    assert str(unnamed.id) not in after
    assert unnamed.tenant.name not in after
    assert str(named.id) not in after  # labelled by the name the operator configured
    assert "shell@v1" not in after
    assert "tenantgate_directive_queue_depth " in after


async def test_quota_denials_are_counted_by_the_limit_that_refused(
    labelled: tuple[FastAPI, Services, TenantFixture, TenantFixture], services: Services
) -> None:
    app, built, named, _ = labelled
    await services.quotas.plans.set_tenant(named.id, overrides={"tool_calls_per_minute": 1})
    before = await _scrape(app)
    async with _client(app) as client:
        statuses = [
            (
                await client.post("/v1/tools/echo@v1/call", headers=named.headers(), json={"arguments": {"text": "x"}})
            ).status_code
            for _ in range(3)
        ]
    assert statuses.count(429) >= 1
    await built.audit.drain()
    after = await _scrape(app)
    kind = "tool_calls_per_minute"
    moved = _value(after, "tenantgate_quota_denials_total", kind=kind, tenant=named.tenant.name) - _value(
        before, "tenantgate_quota_denials_total", kind=kind, tenant=named.tenant.name
    )
    assert moved == statuses.count(429)


async def test_metrics_need_the_token_when_one_is_set(
    labelled: tuple[FastAPI, Services, TenantFixture, TenantFixture],
) -> None:
    app, _, named, _ = labelled
    async with _client(app) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 404
        assert (await client.get("/metrics", headers=named.headers())).status_code == 404  # a tenant key is not it
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200


async def test_without_a_token_metrics_answer_only_unforwarded_loopback_requests(app: FastAPI) -> None:
    """The suite's settings set no token (saas): only loopback to loopback, with no proxy header."""
    async with _client(app, base="http://tenantgate.test") as client:
        assert (await client.get("/metrics")).status_code == 404  # not a loopback address
    async with _client(app, client=("203.0.113.9", 40000), base="http://127.0.0.1:8000") as client:
        assert (await client.get("/metrics")).status_code == 404  # not a loopback client
    async with _client(app, base="http://127.0.0.1:8000") as client:
        assert (await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status_code == 404
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert "tenantgate_http_requests_total" in scraped.text


async def test_webhook_verifications_are_counted_by_provider_and_result(
    labelled: tuple[FastAPI, Services, TenantFixture, TenantFixture],
) -> None:
    app, _, _, _ = labelled
    before = await _scrape(app)
    async with _client(app) as client:
        refused = await client.post(f"/v1/webhooks/stripe/{uuid.uuid4()}", content=b"{}")
        assert refused.status_code == 401
        await client.post(f"/v1/webhooks/made-up-{uuid.uuid4().hex}/{uuid.uuid4()}", content=b"{}")
    after = await _scrape(app)
    assert (
        _value(after, "tenantgate_webhook_verifications_total", provider="stripe", result="rejected")
        - _value(before, "tenantgate_webhook_verifications_total", provider="stripe", result="rejected")
        == 1
    )
    assert "made-up-" not in after  # an invented provider is "other", not a new series
    assert _value(after, "tenantgate_webhook_verifications_total", provider="other", result="rejected") >= 1


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    assert configure_tracing(True, provider=provider)
    try:
        yield memory
    finally:
        configure_tracing(False)


async def test_a_tool_call_produces_gate_tool_and_database_spans_with_ids_and_no_arguments(
    exporter: InMemorySpanExporter, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    secret_text = "do-not-trace-" + uuid.uuid4().hex
    exporter.clear()
    response = await client.post(
        "/v1/tools/echo@v1/call", headers=tenant_a.headers(), json={"arguments": {"text": secret_text}}
    )
    assert response.status_code == 200, response.text
    request_id = response.headers["x-request-id"]
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert "tenantgate.gate" in names
    assert "tenantgate.tool" in names
    assert "tenantgate.db.transaction" in names
    gate = next(s for s in spans if s.name == "tenantgate.gate")
    tool = next(s for s in spans if s.name == "tenantgate.tool")
    assert gate.attributes is not None
    assert tool.attributes is not None
    assert gate.attributes["tenantgate.tenant_id"] == str(tenant_a.id)
    assert gate.attributes["tenantgate.request_id"] == request_id
    assert gate.attributes["tenantgate.verdict"] == "allow"
    assert tool.attributes["tenantgate.tool"] == "echo@v1"
    assert tool.attributes["tenantgate.outcome"] == "succeeded"
    assert tool.attributes["tenantgate.request_id"] == request_id
    for finished in spans:
        assert secret_text not in repr(dict(finished.attributes or {}))


async def test_an_agent_turn_is_one_span_with_the_tenant_and_its_outcome(
    exporter: InMemorySpanExporter, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    policy = {**POLICY, "ai": {"planner": {"provider": "scripted", "script": [{"reply": "Hi."}]}}}
    await services.policies.set_policy(tenant_a.system, policy)
    session = await client.post("/v1/sessions", json={"title": "traced"}, headers=tenant_a.headers())
    assert session.status_code == 201, session.text
    exporter.clear()
    turn = await client.post(
        f"/v1/sessions/{session.json()['id']}/messages", json={"content": "Hello?"}, headers=tenant_a.headers()
    )
    assert turn.status_code == 200, turn.text
    (traced,) = [s for s in exporter.get_finished_spans() if s.name == "tenantgate.turn"]
    assert traced.attributes is not None
    assert traced.attributes["tenantgate.tenant_id"] == str(tenant_a.id)
    assert traced.attributes["tenantgate.run_status"] == "completed"
    assert "Hello?" not in repr(dict(traced.attributes))


async def test_spans_are_a_no_op_when_tracing_is_off() -> None:
    configure_tracing(False)
    with span("tenantgate.gate") as current:
        assert current is None


async def test_metrics_and_alerts_can_be_switched_off(installation: Installation, services: Services) -> None:
    settings = installation.settings.model_copy(
        update={"metrics_enabled": False, "alerts_enabled": False, "metrics_token": SecretStr(TOKEN)}
    )
    built = Services.build(replace(installation, settings=settings), registry=fixture_tools.registry(settings.mode))
    tenant = await new_tenant(services, "off")
    await services.alerts.set_settings(tenant.system, {"rules": {"webhook_failures": {"threshold": 1}}})
    app = create_app(built)
    async with app.router.lifespan_context(app):
        async with _client(app) as client:
            response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 404
        event = AuditEvent("webhook.rejected", decision="deny", code="webhook_rejected", payload={"endpoint_id": "x"})
        await built.audit.record(tenant.system, event)
        await built.alerts.drain()
    assert await services.alerts.store.list(tenant.system) == []
    assert "tenantgate_audit_append_seconds_count 0.0" in built.metrics.exposition().decode()  # nothing observed
