"""Anomaly alerts end to end: a scripted attack over HTTP, one alert per rule window, a signed webhook.

The services here reach a fake alert sink on loopback through the egress door (a host
table that knows only the sink, a dialer that reaches only 127.0.0.1). The rule windows
are counted on a clock the tests hold still, then step forward by one window.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tenantgate.alerts import window_start
from tenantgate.api import create_app
from tenantgate.audit import AuditEvent
from tenantgate.context import PrincipalKind, Role
from tenantgate.egress import EgressPolicy
from tenantgate.gate import SwitchScope
from tenantgate.installation import Installation, Outside, Services
from tenantgate.webhooks import StandardWebhooks, WebhookRejected
from tests import fixture_tools
from tests.conftest import TenantFixture, new_tenant
from tests.fakes.loopback import HostTable, LoopbackOnly
from tests.fakes.server import FakeServer, Reply, Request

SINK = "alerts.sink.test"
# Mid-window for every default window length (60, 300, 600 s): a burst never straddles two.
T0 = float(window_start(2_000_000_000, 600) + 30)


class Sink:
    """An alert receiver: records every delivery; answers ``failures`` 503s before the first 200."""

    def __init__(self) -> None:
        self.received: list[Request] = []
        self.failures = 0

    async def __call__(self, request: Request) -> Reply:
        self.received.append(request)
        if self.failures > 0:
            self.failures -= 1
            return Reply(503, {"error": "try later"})
        return Reply(204)


@dataclass
class World:
    services: Services
    app: FastAPI
    sink: Sink
    server: FakeServer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://tenantgate.test")

    async def settle(self) -> None:
        await self.services.audit.drain()
        await self.services.alerts.drain()


@pytest.fixture
async def world(installation: Installation) -> AsyncIterator[World]:
    sink = Sink()
    async with FakeServer(sink) as server:
        policy = EgressPolicy(
            allowed_ports=frozenset({server.port}), allowed_private=frozenset({ip_network("127.0.0.1/32")})
        )
        outside = Outside(policy=policy, resolver=HostTable({SINK: "127.0.0.1"}), dialer=lambda: LoopbackOnly([]))
        settings = installation.settings.model_copy(update={"alerts_webhook_backoff_s": 0.01})
        built = Services.build(
            replace(installation, settings=settings),
            registry=fixture_tools.registry(settings.mode),
            outside=outside,
        )
        built.alerts.clock = lambda: T0
        app = create_app(built)
        async with app.router.lifespan_context(app):
            yield World(built, app, sink, server)


async def _with_sink(world: World, tenant: TenantFixture, **rules: Any) -> str:
    """Point the tenant's alerts at the sink with a fresh whsec_ secret; returns the secret."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    await world.services.credentials.create(
        tenant.system, name="alerts-sink", kind="webhook_secret", secret={"secret": secret}
    )
    await world.services.alerts.set_settings(
        tenant.system,
        {"webhook_url": world.server.base(SINK) + "/hooks/tenantgate", "webhook_credential": "alerts-sink",
         "rules": rules},
    )  # fmt: skip
    return secret


async def _attack(world: World, tenant: TenantFixture, attempts: int) -> None:
    """What a hijacked planner does: try the shell, again and again (it does not exist in saas)."""
    async with world.client() as client:
        for n in range(attempts):
            response = await client.post(
                "/v1/tools/shell@v1/call", headers=tenant.headers(), json={"arguments": {"command": f"rm -rf /{n}"}}
            )
            assert response.status_code == 403
            assert response.json()["code"] == "capability_denied"
    await world.settle()


async def _alerts(world: World, tenant: TenantFixture, **params: str) -> list[dict[str, Any]]:
    async with world.client() as client:
        response = await client.get("/v1/alerts", headers=tenant.headers(), params=params)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def test_a_burst_of_forbidden_tool_attempts_raises_one_alert_per_window_and_a_signed_webhook(
    world: World, services: Services
) -> None:
    tenant = await new_tenant(services, "attacked")
    bystander = await new_tenant(services, "bystander")
    secret = await _with_sink(world, tenant)

    await _attack(world, tenant, 12)

    alerts = await _alerts(world, tenant, rule="forbidden_tool")
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["subject"] == f"principal:{tenant.owner_id}"
    assert alert["severity"] == "critical"
    assert alert["threshold"] == 3
    assert alert["response"] is None  # automatic responses are off by default
    assert alert["notified_at"] is not None
    assert alert["notify_attempts"] == 1
    # The delivery: one POST, Standard Webhooks-signed over the raw body, naming the alert.
    assert len(world.sink.received) == 1
    delivery = world.sink.received[0]
    assert delivery.method == "POST"
    assert delivery.path == "/hooks/tenantgate"
    verified = StandardWebhooks(secret).verify(delivery.headers, delivery.body, now=time.time())
    assert verified.event_id == alert["id"]
    assert verified.body["type"] == "tenantgate.alert"
    assert verified.body["data"]["rule"] == "forbidden_tool"
    assert verified.body["data"]["tenant_id"] == str(tenant.id)
    assert "rm -rf" not in delivery.body.decode()  # ids and counts, never what the planner sent
    with pytest.raises(WebhookRejected) as wrong:
        StandardWebhooks("whsec_" + base64.b64encode(b"x" * 32).decode()).verify(
            delivery.headers, delivery.body, now=time.time()
        )
    assert "signature" in wrong.value.reason
    # No pause unless the tenant asked for it.
    assert not [s for s in await world.services.policies.tenant_switches(tenant.system) if s.scope is SwitchScope.AI]

    # More of the same in the same window: still one alert, no second delivery.
    await _attack(world, tenant, 5)
    assert len(await _alerts(world, tenant, rule="forbidden_tool")) == 1
    assert len(world.sink.received) == 1

    # The next window: a second alert, a second delivery.
    world.services.alerts.clock = lambda: T0 + 600
    await _attack(world, tenant, 3)
    alerts = await _alerts(world, tenant, rule="forbidden_tool")
    assert len(alerts) == 2
    assert alerts[0]["window_start"] != alerts[1]["window_start"]
    assert len(world.sink.received) == 2
    assert world.sink.received[1].headers["webhook-id"] == alerts[0]["id"]

    # The other tenant: no alerts, and the attacked tenant's alert is not found from there.
    assert await _alerts(world, bystander) == []
    async with world.client() as client:
        other = await client.get(f"/v1/alerts/{alert['id']}", headers=bystander.headers())
        assert other.status_code == 404
        acked = await client.post(f"/v1/alerts/{alert['id']}/acknowledge", headers=bystander.headers())
        assert acked.status_code == 404
        mine = await client.post(f"/v1/alerts/{alert['id']}/acknowledge", headers=tenant.headers())
        assert mine.status_code == 200
        assert mine.json()["status"] == "acknowledged"
    trail = await world.services.audit.page(tenant.system, action="alert.raised")
    assert len(trail) == 2
    assert {r.code for r in trail} == {"forbidden_tool"}
    assert len(await world.services.audit.page(tenant.system, action="alert.acknowledged")) == 1


async def test_an_alert_is_raised_once_per_window_even_when_two_processes_count_it(
    world: World, installation: Installation, services: Services
) -> None:
    """Two processes with their own (memory) counts both reach the threshold: one row, one delivery."""
    tenant = await new_tenant(services, "twice")
    await _with_sink(world, tenant)
    other = Services.build(installation, registry=fixture_tools.registry(installation.settings.mode))
    other.alerts.clock = lambda: T0
    await world.services.alerts.set_settings(
        tenant.system, {"rules": {"webhook_failures": {"threshold": 3}},
                        "webhook_url": world.server.base(SINK) + "/h", "webhook_credential": "alerts-sink"},
    )  # fmt: skip
    try:
        for built in (world.services, other):
            for _ in range(3):
                await built.audit.record(
                    tenant.system, AuditEvent("webhook.rejected", decision="deny", code="webhook_rejected",
                                              payload={"endpoint_id": "e2", "provider": "standard"}),
                )  # fmt: skip
            await built.alerts.drain()
    finally:
        await other.stop()
        await other.db.dispose()
    alerts = await _alerts(world, tenant, rule="webhook_failures")
    assert [a["subject"] for a in alerts] == ["endpoint:e2"]
    assert len(world.sink.received) == 1


async def test_automatic_pause_of_ai_when_the_tenant_enables_it(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "paused")
    await _with_sink(world, tenant, forbidden_tool={"response": "pause_ai"})
    await _attack(world, tenant, 3)
    (alert,) = await _alerts(world, tenant, rule="forbidden_tool")
    assert alert["response"] == "pause_ai"
    assert alert["response_result"].startswith("AI paused")
    switches = await world.services.policies.tenant_switches(tenant.system)
    assert [s.scope for s in switches] == [SwitchScope.AI]
    assert switches[0].set_by == "alerts"
    changed = await world.services.audit.page(tenant.system, action="kill_switch.changed")
    assert len(changed) == 1
    assert changed[0].payload is not None
    assert changed[0].payload["scope"] == "ai"
    # The pause is the tenant's own: another tenant's AI runs on.
    other = await new_tenant(services, "unpaused")
    assert await world.services.policies.tenant_switches(other.system) == []


async def test_automatic_key_revocation_on_repeated_authentication_failures(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "guessed")
    await world.services.alerts.set_settings(
        tenant.system, {"rules": {"auth_failures": {"threshold": 3, "response": "revoke_key"}}}
    )
    target = await services.keys.create(tenant.system, principal_id=tenant.owner_id)  # the key guessed at
    prefix = target.key.split("_")[1]
    async with world.client() as client:
        assert (await client.get("/v1/whoami", headers=tenant.headers(target.key))).status_code == 200
        for n in range(3):
            guess = f"tg_{prefix}_{'x' * 42}{n}"
            assert (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {guess}"})).status_code == 401
        await world.settle()
        (alert,) = await _alerts(world, tenant, rule="auth_failures")
        assert alert["subject"] == f"key:{prefix}"
        assert alert["response_result"] == f"key {target.info.id} revoked"
        # The guessed-at key no longer opens anything; the tenant's other keys do.
        assert (await client.get("/v1/whoami", headers=tenant.headers(target.key))).status_code == 401
        assert (await client.get("/v1/whoami", headers=tenant.headers())).status_code == 200
    revoked = await world.services.audit.page(tenant.system, action="key.revoked")
    assert [r.payload["key_prefix"] for r in revoked if r.payload is not None] == [prefix]


async def test_revoke_key_is_refused_for_rules_without_a_key(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "bad-settings")
    async with world.client() as client:
        response = await client.put(
            "/v1/alert-settings", headers=tenant.headers(),
            json={"rules": {"forbidden_tool": {"response": "revoke_key"}}},
        )  # fmt: skip
        assert response.status_code == 422
        assert response.json()["code"] == "invalid_input"
        unknown = await client.put(
            "/v1/alert-settings", headers=tenant.headers(), json={"rules": {"no_such_rule": {"threshold": 1}}}
        )
        assert unknown.status_code == 422
        current = await client.get("/v1/alert-settings", headers=tenant.headers())
    assert current.json()["settings"] == {}  # nothing changed
    assert current.json()["effective"]["forbidden_tool"]["response"] == "none"


@pytest.mark.parametrize(
    ("rule", "event", "subject"),
    [
        ("webhook_failures", AuditEvent("webhook.rejected", decision="deny", code="webhook_rejected",
                                        payload={"endpoint_id": "ep-1", "provider": "stripe"}), "endpoint:ep-1"),
        ("idempotency_conflict", AuditEvent("tool.idempotency_conflict", decision="deny", code="idempotency_conflict",
                                            tool="echo@v1"), "principal"),
        ("confirmation_ignored", AuditEvent("confirmation.requested", decision="confirm", code="confirmation_required",
                                            tool="memory_wipe@v1"), "principal"),
        ("budget_burn", AuditEvent("tool.executed", decision="succeeded", tool="echo@v1",
                                   payload={"duration_ms": 1.0}), "tenant"),
        ("denial_spike_tenant", AuditEvent("gate.decided", decision="deny", code="not_granted", tool="echo@v1"),
         "tenant"),
    ],
)  # fmt: skip
async def test_each_rule_counts_its_events_and_fires_at_its_threshold(
    world: World, services: Services, rule: str, event: AuditEvent, subject: str
) -> None:
    tenant = await new_tenant(services, "rules")
    await world.services.alerts.set_settings(tenant.system, {"rules": {rule: {"threshold": 4, "window_s": 60}}})
    for n in range(4):
        assert await _alerts(world, tenant, rule=rule) == [], f"fired early, at {n}"
        await world.services.audit.record(tenant.system, event)
    await world.settle()
    (alert,) = await _alerts(world, tenant, rule=rule)
    expected = f"principal:{tenant.system.principal_id}" if subject == "principal" else subject
    assert alert["subject"] == expected
    assert alert["window_s"] == 60


async def test_a_disabled_rule_never_fires(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "quiet")
    await world.services.alerts.set_settings(tenant.system, {"rules": {"forbidden_tool": {"enabled": False}}})
    await _attack(world, tenant, 5)
    assert await _alerts(world, tenant, rule="forbidden_tool") == []


async def test_a_failing_sink_is_retried_with_the_same_webhook_id(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "retried")
    await _with_sink(world, tenant)
    world.sink.failures = 2
    await _attack(world, tenant, 3)
    (alert,) = await _alerts(world, tenant, rule="forbidden_tool")
    assert len(world.sink.received) == 3
    assert {r.headers["webhook-id"] for r in world.sink.received} == {alert["id"]}
    assert alert["notify_attempts"] == 3
    assert alert["notified_at"] is not None
    assert alert["notify_error"] is None


async def test_a_sink_the_egress_door_refuses_is_not_retried(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "refused")
    await _with_sink(world, tenant)
    await world.services.alerts.set_settings(
        tenant.system, {"webhook_url": "http://169.254.169.254/latest/meta-data", "webhook_credential": "alerts-sink"}
    )
    await _attack(world, tenant, 3)
    (alert,) = await _alerts(world, tenant, rule="forbidden_tool")
    assert alert["notified_at"] is None
    assert alert["notify_attempts"] == 1
    assert "egress refused" in alert["notify_error"]
    assert world.sink.received == []
    refused = await world.services.audit.page(tenant.system, action="egress.denied")
    assert [r.tool for r in refused] == ["alerts.webhook"]


async def test_alerts_need_the_owner_or_admin_role(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "roles")
    member = await services.principals.create(
        tenant.system, name="m", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
    )
    issued = await services.keys.create(tenant.system, principal_id=member.id)
    async with world.client() as client:
        for path in ("/v1/alerts", "/v1/alert-settings"):
            response = await client.get(path, headers=tenant.headers(issued.key))
            assert response.status_code == 403, path
            assert response.json()["code"] == "role_required"


async def test_the_platform_sees_every_tenants_alerts(world: World, services: Services) -> None:
    first = await new_tenant(services, "p1")
    second = await new_tenant(services, "p2")
    await _attack(world, first, 3)
    await _attack(world, second, 3)
    _, key = await services.platform_keys.create("alerts-test")
    async with world.client() as client:
        response = await client.get("/v1/platform/alerts", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
        tenants = {a["tenant_id"] for a in response.json()}
        assert {str(first.id), str(second.id)} <= tenants
        one = await client.get(
            "/v1/platform/alerts", params={"tenant_id": str(first.id)}, headers={"Authorization": f"Bearer {key}"}
        )
        assert {a["tenant_id"] for a in one.json()} == {str(first.id)}
        refused = await client.get("/v1/platform/alerts", headers=first.headers())
        assert refused.status_code == 401


async def test_alert_rows_are_row_level_secured(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "rls")
    other = await new_tenant(services, "rls-other")
    await _attack(world, tenant, 3)
    async with services.db.tenant(other.system) as conn:
        seen = (await conn.execute(sa.text("SELECT count(*) FROM tenantgate.alerts"))).scalar_one()
        settings_rows = (await conn.execute(sa.text("SELECT count(*) FROM tenantgate.alert_settings"))).scalar_one()
    assert seen == 0
    assert settings_rows == 0


async def test_reused_idempotency_keys_are_audited_and_alerted(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "replay")
    policy = {"packages": [{"package": "memory"}], "grants": [{"id": "wipe", "tools": ["memory_wipe@v1"]}]}
    await world.services.policies.set_policy(tenant.system, policy)
    await world.services.alerts.set_settings(tenant.system, {"rules": {"idempotency_conflict": {"threshold": 2}}})
    async with world.client() as client:

        def post(key: str, scope: str) -> Any:
            return client.post(
                "/v1/tools/memory_wipe@v1/call",
                json={"arguments": {"scope": scope}},
                headers={**tenant.headers(), "Idempotency-Key": key},
            )

        assert (await post("k1", "notes")).status_code == 200
        assert (await post("k1", "everything")).status_code == 409
        assert await _alerts(world, tenant, rule="idempotency_conflict") == []
        assert (await post("k1", "all")).status_code == 409
    await world.settle()
    conflicts = await world.services.audit.page(tenant.system, action="tool.idempotency_conflict")
    assert [(r.decision, r.code, r.tool) for r in conflicts] == [("deny", "idempotency_conflict", "memory_wipe@v1")] * 2
    (alert,) = await _alerts(world, tenant, rule="idempotency_conflict")
    assert alert["subject"] == f"principal:{tenant.owner_id}"


async def test_a_long_subject_is_cut_to_the_alert_tables_bound(world: World, services: Services) -> None:
    tenant = await new_tenant(services, "long")
    await world.services.alerts.set_settings(tenant.system, {"rules": {"webhook_failures": {"threshold": 1}}})
    endpoint = "e" * 400
    event = AuditEvent("webhook.rejected", decision="deny", code="webhook_rejected", payload={"endpoint_id": endpoint})
    await world.services.audit.record(tenant.system, event)
    (alert,) = await _alerts(world, tenant, rule="webhook_failures")
    assert alert["subject"] == ("endpoint:" + endpoint)[:200]
