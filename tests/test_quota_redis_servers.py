"""Two real API server processes sharing Redis hold one tenant's rate limit exactly (issue 7).

Each server is ``tenantgate serve`` (uvicorn) in its own process, on a free loopback port,
against the suite's PostgreSQL and the same Redis. With memory storage each process would
admit its own 10; sharing Redis, the two together admit exactly 10.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tenantgate.gate import PolicyStore
from tenantgate.installation import Installation, Services
from tenantgate.quotas import Budget
from tenantgate.tools import ToolRegistry
from tests import fixture_tools
from tests.cluster import Cluster, ClusterConfig
from tests.conftest import new_tenant

REDIS_URL = os.environ.get("TENANTGATE_TEST_REDIS_URL")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="no Redis here: set TENANTGATE_TEST_REDIS_URL (.ci/run does when redis-cli ping answers)"
    ),
]

POLICY: dict[str, Any] = {"packages": [{"package": "plugin-basics"}], "grants": [{"id": "b", "tools": ["echo@v1"]}]}


@pytest.fixture(scope="module")
def servers(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two ``tenantgate serve`` processes on the suite's database, sharing ``TENANTGATE_TEST_REDIS_URL``."""
    config = ClusterConfig.of(
        installation.settings,
        redis_url=REDIS_URL,
        plugins=("tests.fixture_tools:PLUGIN",),
        directives="inline",
        # This test is about exact counting, not about a slow Redis: on a busy machine the default
        # 0.5 s would turn some calls into (fail-closed) 503s.
        env={"TENANTGATE_QUOTA_BACKEND_TIMEOUT_S": "5"},
    )
    with Cluster(config, tmp_path_factory.mktemp("servers")) as cluster:
        yield [node.url for node in cluster.start_apis(2)]  # ClusterError, with the log, if one does not come up


async def test_two_servers_sharing_redis_admit_exactly_the_tenants_limit(
    servers: list[str], services: Services
) -> None:
    tenant = await new_tenant(services, "redis2")
    other = await new_tenant(services, "redis2b")
    # The servers load the tools as a plugin (package "plugin-basics"): the policy is checked against that.
    served = ToolRegistry(services.registry.mode)
    served.register_available([fixture_tools.echo])
    served.add_package(fixture_tools.PLUGIN[1])
    policies = PolicyStore(db=services.db, registry=served, audit=services.audit)
    for t in (tenant, other):
        await policies.set_policy(t.system, POLICY)
    _, platform_key = await services.platform_keys.create(f"redis2-{uuid.uuid4().hex[:6]}")
    first, second = servers
    async with httpx.AsyncClient(timeout=30) as http:
        # The limit is set through the platform API of one server; the other reads it from PostgreSQL.
        put = await http.put(
            f"{first}/v1/platform/tenants/{tenant.id}/limits",
            json={"overrides": {"tool_calls_per_minute": 10}},
            headers={"Authorization": f"Bearer {platform_key}"},
        )
        assert put.status_code == 200, put.text
        assert put.json()["limits"]["tool_calls_per_minute"] == 10

        async def call(base: str, i: int) -> httpx.Response:
            return await http.post(
                f"{base}/v1/tools/echo@v1/call", json={"arguments": {"text": f"#{i}"}}, headers=tenant.headers()
            )

        # 50 concurrent tool calls, alternating between the two processes.
        answers = await asyncio.gather(*(call(servers[i % 2], i) for i in range(50)))
        statuses = [a.status_code for a in answers]
        assert statuses.count(200) == 10, statuses
        assert statuses.count(429) == 40, statuses
        for refused in (a for a in answers if a.status_code == 429):
            body = refused.json()
            assert (body["code"], body["details"][0]["limit"]) == ("quota_exceeded", "tool_calls_per_minute")
            assert 1 <= int(refused.headers["Retry-After"]) <= 61
        # Exactly 10 executed: the durable tool-call counter (reserved only past the rate limit) says so.
        limits = (await services.quotas.plans.limits(tenant.system)).limits
        usage = {u.budget: u.used for u in await services.quotas.budgets.usage(tenant.system, limits)}
        assert usage[Budget.TOOL_CALLS] == 10
        # The other server sees the same window: the rate is spent there too.
        seen = (await http.get(f"{second}/v1/usage", headers=tenant.headers())).json()
        rate = next(r for r in seen["rates"] if r["limit"] == "tool_calls_per_minute")
        assert (rate["used"], rate["max"]) == (10, 10)
        # Another tenant on the same servers and the same Redis is untouched.
        assert (await call_as(http, first, other.headers())).status_code == 200


async def call_as(http: httpx.AsyncClient, base: str, headers: dict[str, str]) -> httpx.Response:
    return await http.post(f"{base}/v1/tools/echo@v1/call", json={"arguments": {"text": "hi"}}, headers=headers)
