"""The world a load run drives: fake providers on loopback, the cluster, and tenants set up to use them.

`load_world` starts, on 127.0.0.1 only, a Stripe-like payments API (`tests.fakes.payments`), an
OpenAI-compatible model (Chat Completions wire format, answers built with `tests.fake_llm`), then
``apis`` API servers and ``workers`` workers (`tests.cluster`, entry `tests.cluster_node` so their
egress door reaches exactly those two fakes) on one database and one Redis. Each tenant gets an
owner key, a policy (echo allowed, charges behind a human confirmation), a Standard Webhooks
endpoint and its agent sessions, all through the HTTP API but the tenant itself.

Every text a tenant sends carries its ``marker``: finding one tenant's marker or ids (its own, its
endpoint's, its sessions') in another tenant's answers or rows is a leak (`tests.load_checks`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Installation, Services
from tenantgate.quotas import Limits
from tenantgate.store import DatabaseUrls
from tests.cluster import Cluster, ClusterConfig
from tests.cluster_node import PORTS_VARIABLE
from tests.fake_llm import openai_calls, openai_text
from tests.fakes.payments import FakePayments
from tests.fakes.server import FakeServer, Reply, Request

PLUGINS = ("tests.fixture_tools:PLUGIN", "tests.directive_tools:PLUGIN")
MODEL = "gpt-4o-mini"
LLM_KEY = "sk-load-" + "k" * 32
POLICY: dict[str, Any] = {
    "packages": [{"package": "plugin-basics"}, {"package": "payments"}],
    "grants": [
        {"id": "echo", "tools": ["echo@v1"]},
        {"id": "pay", "tools": ["charge@v1"], "kinds": ["user"], "confirm": True},
    ],
    "ai": {"vendors": ["openai"]},  # the platform's planner (the fake model) may see this tenant's data
}


@dataclass(frozen=True)
class Installed:
    """Where the installation lives: its database, pepper and KEK, and Redis (required: shared limits)."""

    urls: DatabaseUrls
    db_role_prefix: str
    redis_url: str
    pepper: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    master_key: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())


@dataclass(frozen=True)
class LoadTenant:
    """One tenant of the run and what its traffic needs."""

    id: uuid.UUID
    marker: str  # in every text this tenant sends
    key: str  # the owner's API key
    endpoint_id: uuid.UUID  # its Standard Webhooks endpoint
    webhook_secret: str
    sessions: tuple[uuid.UUID, ...]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def traces(self) -> tuple[str, ...]:
        """What only this tenant's data may contain: its marker, its id, its endpoint's and sessions' ids."""
        return (self.marker, str(self.id), str(self.endpoint_id), *(str(s) for s in self.sessions))


@dataclass
class World:
    """The running world: fakes, cluster, the harness's own services (setup and checks), tenants."""

    payments: FakePayments
    payments_url: str
    llm: FakeServer
    cluster: Cluster
    services: Services
    tenants: list[LoadTenant]

    @property
    def bases(self) -> list[str]:
        return [node.url for node in self.cluster.apis]


async def model(request: Request) -> Reply:
    """An OpenAI-compatible model: echo the user's last text through ``echo@v1``, then say it is done."""
    body = request.json()
    messages = body["messages"]
    said = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    if request.bearer() != LLM_KEY:
        return Reply(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}})
    if messages[-1]["role"] == "tool":
        return Reply(200, openai_text(f"Done: {said}"))
    call = ("call_" + uuid.uuid4().hex[:12], "echo__v1", json.dumps({"text": said}))
    return Reply(200, openai_calls(call))


def harness_settings(installed: Installed, tenant_keys_dir: Path) -> Settings:
    """The installation as the harness sees it (to create tenants and check the outcome); the cluster shares it."""
    return Settings(
        _env_file=None,
        database_url=installed.urls.app,
        admin_database_url=installed.urls.admin,
        owner_database_url=installed.urls.owner,
        db_role_prefix=installed.db_role_prefix,
        pepper=installed.pepper,
        master_key=installed.master_key,
        vault_tenant_keys_dir=tenant_keys_dir,
        plugins=PLUGINS,
        jwt_issuers=(),
        db_pool_size=4,
    )


def cluster_config(settings: Settings, redis_url: str, ports: list[int], llm_port: int) -> ClusterConfig:
    """The harness's installation, whose processes reach the fakes on ``ports`` and plan with the fake model."""
    return ClusterConfig.of(
        settings,
        plugins=PLUGINS,
        redis_url=redis_url,
        env={
            PORTS_VARIABLE: ",".join(str(p) for p in ports),
            "TENANTGATE_AGENT_PLANNER": "openai",
            "TENANTGATE_OPENAI_MODEL": MODEL,
            "TENANTGATE_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "TENANTGATE_OPENAI_API_KEY": LLM_KEY,
            "TENANTGATE_WORKER_HEARTBEAT_S": "1",
            "TENANTGATE_WORKER_STALLED_AFTER_S": "5",
            # The run is about losing and leaking nothing, not about a slow Redis: on a busy machine the
            # default 0.5 s would turn some calls into (fail-closed, correct, but unexpected here) 503s.
            "TENANTGATE_QUOTA_BACKEND_TIMEOUT_S": "5",
        },
        serve_command=("-m", "tests.cluster_node", "serve"),
        worker_command=("-m", "tests.cluster_node", "worker"),
    )


async def new_tenant(services: Services, http: httpx.AsyncClient, index: int, sessions: int) -> LoadTenant:
    """A tenant with limits lifted (the run measures work, not refusals), its owner key, policy, endpoint, sessions."""
    marker = f"mk{index}x{secrets.token_hex(5)}"
    tenant = await services.tenants.create(f"load-{marker}")
    await services.quotas.plans.set_tenant(tenant.id, overrides=dict.fromkeys(Limits.model_fields, 10**12))
    system = system_context(tenant.id, mode=services.settings.mode, request_id="load-setup")
    owner = await services.principals.create(
        system, name="owner", kind=PrincipalKind.USER, roles=frozenset({Role.OWNER})
    )
    key = (await services.keys.create(system, principal_id=owner.id)).key
    auth = {"Authorization": f"Bearer {key}"}
    (await http.put("/v1/policy", json=POLICY, headers=auth)).raise_for_status()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    endpoint = await http.post("/v1/webhook-endpoints", json={"provider": "standard", "secret": secret}, headers=auth)
    endpoint.raise_for_status()
    made = []
    for n in range(sessions):
        created = await http.post("/v1/sessions", json={"title": f"{marker} session {n}"}, headers=auth)
        created.raise_for_status()
        made.append(uuid.UUID(created.json()["id"]))
    return LoadTenant(tenant.id, marker, key, uuid.UUID(endpoint.json()["endpoint_id"]), secret, tuple(made))


@contextlib.asynccontextmanager
async def load_world(
    installed: Installed, root: Path, *, tenants: int, sessions: int = 2, apis: int = 2, workers: int = 2
) -> AsyncIterator[World]:
    """Fakes, ``apis`` API servers, ``workers`` workers, ``tenants`` tenants of ``sessions`` sessions; stopped at exit.

    One session per task of the mix (`tests.load_mix.Shape.concurrency`): a session's turns come one at a time.
    """
    payments = FakePayments()
    async with FakeServer(payments) as pay_server, FakeServer(model) as llm:
        settings = harness_settings(installed, root / "tenant-keys")
        cluster = Cluster(cluster_config(settings, installed.redis_url, [pay_server.port, llm.port], llm.port), root)
        services = Services.build(Installation.open(settings, migrate_schema=False))
        try:
            await services.db.verify()
            await asyncio.to_thread(cluster.start_apis, apis)
            for node in await asyncio.to_thread(cluster.start_workers, workers):
                await asyncio.to_thread(cluster.wait_for_log, node, "serving the directive queue")
            async with httpx.AsyncClient(base_url=cluster.apis[0].url, timeout=30) as http:
                made = [await new_tenant(services, http, i, sessions) for i in range(tenants)]
            url = f"http://127.0.0.1:{pay_server.port}/v1/charges"
            yield World(payments, url, llm, cluster, services, made)
        finally:
            await asyncio.to_thread(cluster.stop)
            await services.db.dispose()
