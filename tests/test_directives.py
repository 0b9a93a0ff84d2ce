"""Directives: effects recorded before they happen, and exactly once per idempotency key.

The provider is a loopback fake that honours ``Idempotency-Key`` the way Stripe does (a
replayed key returns the first response) and counts effects per key: the ground truth.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantgate.context import TenantContext
from tenantgate.directives import DirectiveNotFound, DirectiveStatus, IdempotencyConflict
from tenantgate.egress import EgressPolicy
from tenantgate.gate import ProposedCall
from tenantgate.installation import Installation, Outside, Services
from tenantgate.redact import SecretRejected
from tenantgate.tools import Outcome, ToolRegistry
from tests import directive_tools, fixture_tools
from tests.cluster import Cluster, ClusterConfig
from tests.conftest import TenantFixture, new_tenant
from tests.fakes.payments import FakePayments
from tests.fakes.server import FakeServer


def _registry(services: Services) -> ToolRegistry:
    registry = fixture_tools.registry(services.settings.mode)
    registry.register_available([directive_tools.charge])
    registry.add_package(directive_tools.PACKAGE)
    return registry


def _build(installation: Installation, services: Services, port: int) -> Services:
    policy = EgressPolicy(
        allowed_ports=frozenset({port}), allowed_private=frozenset({ip_network("127.0.0.1/32")}), timeout_s=5.0
    )
    return Services.build(installation, registry=_registry(services), outside=Outside(policy=policy))


@pytest.fixture
async def provider() -> AsyncIterator[tuple[FakePayments, FakeServer]]:
    payments = FakePayments()
    async with FakeServer(payments) as server:
        yield payments, server


@pytest.fixture
async def payments_services(
    installation: Installation, services: Services, provider: tuple[FakePayments, FakeServer]
) -> AsyncIterator[Services]:
    built = _build(installation, services, provider[1].port)
    await built.start()
    yield built
    await built.stop()


@dataclass(frozen=True)
class Payer:
    tenant: TenantFixture
    system: TenantContext  # the tenant's owner, authenticated by API key (the name matches the fixtures)

    @property
    def id(self) -> uuid.UUID:
        return self.tenant.id


async def _tenant(built: Services, services: Services) -> Payer:
    tenant = await new_tenant(services, "pay")
    await built.policies.set_policy(tenant.system, directive_tools.POLICY)
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="test")
    return Payer(tenant, owner)


def _charge(server: FakeServer, amount: int = 500) -> ProposedCall:
    return ProposedCall(
        tool="charge@v1", arguments={"url": f"http://127.0.0.1:{server.port}/v1/charges", "amount": amount}
    )


async def test_same_key_from_many_clients_at_once_is_one_effect(
    payments_services: Services, services: Services, provider: tuple[FakePayments, FakeServer]
) -> None:
    tenant = await _tenant(payments_services, services)
    payments, server = provider
    outcomes = await asyncio.gather(
        *(payments_services.boundary.call(tenant.system, _charge(server), idempotency_key="order-42") for _ in range(8))
    )
    results = [o.result for o in outcomes]
    assert all(r is not None and r.outcome is Outcome.SUCCEEDED for r in results)
    assert len({r.directive_id for r in results if r is not None}) == 1
    assert len({r.output["charge_id"] for r in results if r is not None}) == 1
    assert list(payments.effects.values()) == [1]
    assert len(server.arrivals) == 1
    directive = await payments_services.directives.store.get(tenant.system, results[0].directive_id)  # type: ignore[union-attr,arg-type]
    assert (directive.status, directive.attempts, directive.idempotency_key) == (
        DirectiveStatus.SUCCEEDED,
        1,
        "order-42",
    )
    # The provider saw the directive id as its idempotency key.
    assert server.arrivals[0].headers["idempotency-key"] == str(directive.id)


async def test_a_key_reused_for_a_different_call_is_refused_and_changes_nothing(
    payments_services: Services, services: Services, provider: tuple[FakePayments, FakeServer]
) -> None:
    tenant = await _tenant(payments_services, services)
    payments, server = provider
    first = await payments_services.boundary.call(tenant.system, _charge(server, 500), idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        await payments_services.boundary.call(tenant.system, _charge(server, 900), idempotency_key="k")
    again = await payments_services.boundary.call(tenant.system, _charge(server, 500), idempotency_key="k")
    assert first.result is not None
    assert first.result.outcome is Outcome.SUCCEEDED
    assert again.result is not None
    assert again.result.output == first.result.output
    assert list(payments.effects.values()) == [1]


async def test_directives_are_invisible_across_tenants(
    payments_services: Services, services: Services, provider: tuple[FakePayments, FakeServer]
) -> None:
    a = await _tenant(payments_services, services)
    b = await _tenant(payments_services, services)
    server = provider[1]
    outcome = await payments_services.boundary.call(a.system, _charge(server), idempotency_key="same-key")
    other = await payments_services.boundary.call(b.system, _charge(server), idempotency_key="same-key")
    assert outcome.result is not None
    assert other.result is not None
    assert outcome.result.directive_id != other.result.directive_id  # keys are per tenant
    assert outcome.result.directive_id is not None
    with pytest.raises(DirectiveNotFound):
        await payments_services.directives.store.get(b.system, outcome.result.directive_id)
    # SQL level: tenant b's transaction sees none of a's rows, even without a WHERE.
    async with services.db.tenant(b.system) as conn:
        tenants = (await conn.execute(sa.text("SELECT DISTINCT tenant_id FROM tenantgate.directives"))).scalars().all()
    assert tenants == [b.id]


async def test_a_worker_killed_after_the_provider_call_completes_exactly_once(
    installation: Installation, services: Services, provider: tuple[FakePayments, FakeServer], tmp_path: Path
) -> None:
    payments, server = provider
    queued_installation = replace(
        installation, settings=installation.settings.model_copy(update={"directives": "queue"})
    )
    queued = _build(queued_installation, services, server.port)
    await queued.start()
    tenant = await _tenant(queued, services)
    # The real worker loop with the test tools and an egress door open to the fake provider's port.
    config = ClusterConfig.of(
        installation.settings,
        worker_command=("-m", "tests.directive_worker", str(server.port)),
        env={"TENANTGATE_WORKER_HEARTBEAT_S": "0.5", "TENANTGATE_WORKER_STALLED_AFTER_S": "2"},
    )
    cluster = Cluster(config, tmp_path)

    def kill_the_first_worker() -> None:
        # The provider has made the charge; the worker dies before it hears back, so it never
        # records the outcome: the worst moment for a crash.
        if len(cluster.nodes) == 1:
            cluster.kill(first)

    payments.on_effect = kill_the_first_worker
    with cluster:
        first = cluster.start_worker()
        try:
            outcome = await queued.boundary.call(tenant.system, _charge(server, 700), idempotency_key="invoice-7")
            assert outcome.result is not None
            directive_id = outcome.result.directive_id
            assert directive_id is not None
            assert await asyncio.to_thread(first.process.wait, 30) == -signal.SIGKILL
            stuck = await queued.directives.store.get(tenant.system, directive_id)
            assert stuck.status is DirectiveStatus.RUNNING  # the outcome was never recorded
            assert list(payments.effects.values()) == [1]

            second = cluster.replace(first)
            for _ in range(400):
                directive = await queued.directives.store.get(tenant.system, directive_id)
                if directive.status.final:
                    break
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(cluster.stop)
            await queued.stop()
    logs = cluster.logs()
    assert directive.status is DirectiveStatus.SUCCEEDED, logs[-3000:]
    assert directive.attempts == 2
    assert list(payments.effects.values()) == [1]  # the provider saw one effect for the key
    assert len(server.arrivals) == 2  # the second attempt re-sent the same key and got the first charge
    assert {r.headers["idempotency-key"] for r in server.arrivals} == {str(directive_id)}
    assert directive.result == {"charge_id": payments.charges[str(directive_id)]["id"], "amount": 700}
    assert second.process.returncode == 0  # stopped cleanly by SIGTERM


async def test_a_directive_row_never_holds_a_secret(
    installation: Installation, services: Services, provider: tuple[FakePayments, FakeServer]
) -> None:
    tenant = await new_tenant(services, "sec")
    token = "sk_live_" + uuid.uuid4().hex[:24]
    args = {"to": "+4930123456", "message": f"Your key is {token}"}
    result = await services.directives.submit(
        tenant.system, "whatsapp_send@v1", args, args_digest="d1", call_id=uuid.uuid4(), run_id=None
    )
    assert result.outcome is Outcome.SUCCEEDED
    assert [a for t, name, a in fixture_tools.EXECUTED if t == str(tenant.id) and name == "whatsapp_send@v1"] == [args]
    assert result.directive_id is not None
    stored = await services.directives.store.get(tenant.system, result.directive_id)
    assert token not in json.dumps(stored.arguments)  # inline: the call got the real value, the row a redacted one

    queued = _build(
        replace(installation, settings=installation.settings.model_copy(update={"directives": "queue"})),
        services,
        provider[1].port,
    )
    try:
        with pytest.raises(SecretRejected):  # queued, the worker would need it from the row: refused
            await queued.directives.submit(
                tenant.system, "whatsapp_send@v1", args, args_digest="d2", call_id=uuid.uuid4(), run_id=None
            )
    finally:
        await queued.stop()
    async with services.db.tenant(tenant.system) as conn:
        count = await conn.scalar(
            sa.text("SELECT count(*) FROM tenantgate.directives WHERE tenant_id = :t"), {"t": tenant.id}
        )
    assert count == 1


async def test_http_idempotency_key_a_double_click_is_one_effect(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    policy = {"packages": [{"package": "memory"}], "grants": [{"id": "wipe", "tools": ["memory_wipe@v1"]}]}
    await services.policies.set_policy(tenant_a.system, policy)
    url = "/v1/tools/memory_wipe@v1/call"

    def post(key: str, scope: str = "notes", tenant: TenantFixture = tenant_a) -> Any:
        return client.post(
            url, json={"arguments": {"scope": scope}}, headers={**tenant.headers(), "Idempotency-Key": key}
        )

    clicks = await asyncio.gather(*(post("click-1") for _ in range(5)))
    other = await post("click-2")
    conflict = await post("click-1", scope="everything")
    assert [c.status_code for c in clicks] == [200] * 5
    assert len({c.json()["directive_id"] for c in clicks}) == 1
    assert {c.json()["output"]["wiped"] for c in clicks} == {"notes"}
    assert other.status_code == 200
    assert other.json()["directive_id"] != clicks[0].json()["directive_id"]
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    wipes = [a for t, name, a in fixture_tools.EXECUTED if t == str(tenant_a.id) and name == "memory_wipe@v1"]
    assert wipes == [{"scope": "notes"}, {"scope": "notes"}]  # one per key, not per click
    # Another tenant's key of the same name is its own (and here not granted at all).
    assert (await post("click-1", tenant=tenant_b)).status_code == 403
