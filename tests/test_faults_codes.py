"""What a client sees while a control-plane dependency is down: 503, the dependency's code, ``Retry-After``.

Each fault here is one dependency of one in-process API (its own key cache, its own pools)
on the suite's database: the key provider stopped while a tool opens a credential, and the
database cut while requests arrive. Never an allow, never a 500 or a 502 that blames a tool;
and the same process serves again once the dependency is back. ``test_faults.py`` does the
same under load against a cluster of processes.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from tenantgate.api import create_app
from tenantgate.directives import DirectiveQueue
from tenantgate.errors import DatabaseUnavailable
from tenantgate.gate import ProposedCall, args_digest
from tenantgate.installation import Installation, Services
from tenantgate.tools import Outcome, ToolRegistry
from tenantgate.vault import KeyProvider, VaultTransit
from tests import directive_tools, fault_tools, fixture_tools
from tests.conftest import DatabaseFixture, TenantFixture
from tests.fake_transit import FakeTransit
from tests.faults import PgProxy

POLICY = {
    "packages": [{"package": "basics"}, {"package": "credential-probes"}],
    "grants": [{"id": "g", "tools": ["echo@v1", "credential_probe@v1"]}],
}
SECRET = {"api_key": "sk-live-" + "k" * 32}


def _registry(installation: Installation) -> ToolRegistry:
    registry = fixture_tools.registry(installation.settings.mode)
    registry.register_available([fault_tools.credential_probe])
    registry.add_package(fault_tools.PACKAGE)
    return registry


@asynccontextmanager
async def api_process(
    installation: Installation, key_provider: KeyProvider | None = None
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """A fresh API process's state (empty key cache, own pools) and a client for its HTTP API."""
    services = Services.build(installation, registry=_registry(installation), key_provider=key_provider)
    await services.start()
    app = create_app(services, dispose_on_shutdown=False)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenantgate.test") as client,
        ):
            yield services, client
    finally:
        await services.stop()


async def _audit_actions(services: Services, tenant: TenantFixture) -> list[tuple[str, str | None, str | None]]:
    async with services.db.tenant(tenant.system) as conn:
        rows = await conn.execute(
            sa.text("SELECT action, decision, code FROM tenantgate.audit_events WHERE tenant_id = :t ORDER BY seq"),
            {"t": tenant.id},
        )
        return [(r.action, r.decision, r.code) for r in rows]


async def test_a_credential_the_key_provider_cannot_unwrap_is_refused_with_503_and_resumes(
    installation: Installation, services: Services, tenant_a: TenantFixture
) -> None:
    fake = FakeTransit().start()
    port = int(fake.url.rsplit(":", 1)[1])

    def provider() -> VaultTransit:
        return VaultTransit(addr=fake.url, token=fake.token, key="tenantgate", timeout_s=2)

    try:
        # Sealed by one process; the API process below has never unwrapped this tenant's data key.
        async with api_process(installation, provider()) as (sealer, _):
            await sealer.policies.set_policy(tenant_a.system, POLICY)
            await sealer.credentials.create(tenant_a.system, name="crm", kind="api_key", secret=SECRET)
        async with api_process(installation, provider()) as (_, client):
            fake.stop()
            call = await client.post(
                "/v1/tools/credential_probe@v1/call", json={"arguments": {"name": "crm"}}, headers=tenant_a.headers()
            )
            assert call.status_code == 503, call.text
            assert call.json()["code"] == "key_provider_unavailable"
            assert call.headers["Retry-After"] == "5"
            assert SECRET["api_key"] not in call.text
            # Storing a secret needs the key provider too (a new tenant has no data key yet): refused.
            fresh = await client.post(
                "/v1/credentials",
                json={"name": "other", "kind": "api_key", "secret": SECRET},
                headers=tenant_a.headers(),
            )
            assert fresh.status_code in (201, 503), fresh.text  # 201 only from a cached data key
            # Calls that need no credential go on.
            echo = await client.post(
                "/v1/tools/echo@v1/call", json={"arguments": {"text": "hi"}}, headers=tenant_a.headers()
            )
            assert echo.status_code == 200, echo.text

            fake.start(port)  # back, where it was: the same process serves again, no restart
            again = await client.post(
                "/v1/tools/credential_probe@v1/call", json={"arguments": {"name": "crm"}}, headers=tenant_a.headers()
            )
            assert again.status_code == 200, again.text
            assert again.json()["output"]["fields"] == ["api_key"]
    finally:
        fake.stop()
    actions = await _audit_actions(services, tenant_a)
    used = [a for a in actions if a[0] == "credential.used"]
    assert used == [
        ("credential.used", "failed", "key_provider_unavailable"),
        ("credential.used", "succeeded", None),
    ]


async def test_a_new_tenant_cannot_seal_while_the_key_provider_is_down(
    installation: Installation, services: Services, tenant_b: TenantFixture
) -> None:
    fake = FakeTransit().start()
    port = int(fake.url.rsplit(":", 1)[1])
    provider = VaultTransit(addr=fake.url, token=fake.token, key="tenantgate", timeout_s=2)
    try:
        async with api_process(installation, provider) as (_, client):
            fake.stop()
            body = {"name": "crm", "kind": "api_key", "secret": SECRET}
            refused = await client.post("/v1/credentials", json=body, headers=tenant_b.headers())
            assert refused.status_code == 503, refused.text
            assert (refused.json()["code"], refused.headers["Retry-After"]) == ("key_provider_unavailable", "5")
            listed = await client.get("/v1/credentials", headers=tenant_b.headers())
            assert listed.json() == []  # nothing was stored
            fake.start(port)
            stored = await client.post("/v1/credentials", json=body, headers=tenant_b.headers())
            assert stored.status_code == 201, stored.text
    finally:
        fake.stop()


async def test_the_database_cut_off_answers_503_with_retry_after_and_resumes(
    installation: Installation, services: Services, tenant_a: TenantFixture
) -> None:
    proxy = PgProxy(installation.app_url)
    await proxy.start()
    try:
        async with api_process(dataclasses.replace(installation, app_url=proxy.url())) as (cut_off, client):
            await cut_off.policies.set_policy(tenant_a.system, POLICY)
            echo = {"arguments": {"text": "hi"}}
            assert (await client.post("/v1/tools/echo@v1/call", json=echo, headers=tenant_a.headers())).is_success
            await proxy.cut()
            for answer in (
                await client.get("/healthz"),
                await client.get("/v1/whoami", headers=tenant_a.headers()),
                await client.post("/v1/tools/echo@v1/call", json=echo, headers=tenant_a.headers()),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.json()["code"] in {"database_unavailable", "policy_unavailable"}
                assert answer.headers["Retry-After"] == "5"
            await proxy.start()  # reachable again, on the same port
            assert (await client.get("/healthz")).status_code == 200
            for _ in range(50):  # the pool drops its dead connections as it meets them
                answer = await client.post("/v1/tools/echo@v1/call", json=echo, headers=tenant_a.headers())
                if answer.status_code == 200:
                    break
                assert answer.status_code == 503, answer.text
            assert answer.status_code == 200, answer.text
    finally:
        await proxy.cut()


async def test_the_job_queue_unreachable_refuses_with_database_unavailable(installation: Installation) -> None:
    proxy = PgProxy(installation.app_url)
    await proxy.start()
    queue = DirectiveQueue(proxy.url())
    try:
        await queue.open()
        await proxy.cut()
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):  # was procrastinate's ConnectorException: a 500
            await queue.enqueue(uuid.uuid4(), uuid.uuid4())
        assert time.monotonic() - started < 10  # refused within the pool's timeout, not after 30 s
    finally:
        await queue.close()


async def test_a_directive_whose_enqueue_was_refused_is_queued_when_sent_again_under_its_key(
    installation: Installation, services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture
) -> None:
    settings = installation.settings.model_copy(update={"directives": "queue"})
    registry = _registry(installation)
    registry.register_available([directive_tools.charge])
    registry.add_package(directive_tools.PACKAGE)
    queued = Services.build(dataclasses.replace(installation, settings=settings), registry=registry)
    await queued.start()
    try:
        await queued.policies.set_policy(tenant_a.system, directive_tools.POLICY)
        owner = await queued.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")
        charge = ProposedCall("charge@v1", {"url": "http://127.0.0.1:9/v1/charges", "amount": 5})
        # What a request leaves behind when the database goes down between recording its
        # directive and deferring the job: the row, and no job.
        orphan, created = await queued.directives.store.record(
            owner, tool="charge@v1", arguments=charge.arguments, args_digest=args_digest(charge.arguments),
            idempotency_key="invoice-9", call_id=uuid.uuid4(), run_id=None, max_attempts=5,
        )  # fmt: skip
        assert created
        assert _jobs(test_db, orphan.id) == 0
        outcome = await queued.boundary.call(owner, charge, idempotency_key="invoice-9")  # the client's retry
        assert outcome.result is not None
        assert outcome.result.directive_id == orphan.id
        assert outcome.result.outcome is Outcome.PENDING  # no worker here: queued, not run
        assert _jobs(test_db, orphan.id) == 1
    finally:
        await queued.stop()


def _jobs(test_db: DatabaseFixture, directive_id: uuid.UUID) -> int:
    with psycopg.connect(test_db.superuser) as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate.procrastinate_jobs WHERE args->>'directive_id' = %s",
            [str(directive_id)],
        ).fetchone()
    assert row is not None
    return int(row[0])
