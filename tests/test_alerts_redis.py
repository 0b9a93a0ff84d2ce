"""Rule windows counted on Redis: two processes add to one count, and the window fires once."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from pydantic import SecretStr

from tenantgate.alerts import window_start
from tenantgate.audit import AuditEvent
from tenantgate.installation import Installation, Services
from tests import fixture_tools
from tests.conftest import new_tenant

REDIS_URL = os.environ.get("TENANTGATE_TEST_REDIS_URL")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="no Redis here: set TENANTGATE_TEST_REDIS_URL (.ci/run does when redis-cli ping answers)"
    ),
]
T0 = float(window_start(2_000_000_000, 600) + 30)


async def test_two_processes_sharing_redis_count_one_window_together(
    installation: Installation, services: Services
) -> None:
    assert REDIS_URL is not None
    tenant = await new_tenant(services, "shared-count")
    await services.alerts.set_settings(tenant.system, {"rules": {"webhook_failures": {"threshold": 3}}})
    settings = installation.settings.model_copy(update={"redis_url": SecretStr(REDIS_URL)})
    processes = [
        Services.build(replace(installation, settings=settings), registry=fixture_tools.registry(settings.mode))
        for _ in range(2)
    ]
    event = AuditEvent("webhook.rejected", decision="deny", code="webhook_rejected", payload={"endpoint_id": "shared"})
    try:
        for built in processes:
            built.alerts.clock = lambda: T0
        # Two each: neither process alone reaches 3; together they do, once.
        for built in processes:
            for _ in range(2):
                await built.audit.record(tenant.system, event)
        for built in processes:
            await built.alerts.drain()
    finally:
        for built in processes:
            await built.stop()
            await built.db.dispose()
    alerts = await services.alerts.store.list(tenant.system, rule="webhook_failures")
    assert [(a.subject, a.threshold) for a in alerts] == [("endpoint:shared", 3)]
