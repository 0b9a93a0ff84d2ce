"""The load harness, short: 2 API servers and 2 workers under mixed traffic of 3 tenants, every post-check passing.

The long run is ``benchmarks/load.py`` (see benchmarks/README.md); this runs the same code with
small numbers: about 20 seconds of traffic, at most 600 requests. Then the checks are shown to
fail when what they guard is broken: a request with no audit event, a directive answered but
never stored (nor queued), an effect made twice, a delivery lost, a marker in the wrong tenant's answer.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tenantgate.webhooks import sign_standard
from tests.conftest import DatabaseFixture
from tests.load_checks import check, settle
from tests.load_mix import WEIGHTS, Mix, Sent, Shape
from tests.load_world import Installed, load_world

REDIS_URL = os.environ.get("TENANTGATE_TEST_REDIS_URL")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not REDIS_URL, reason="no Redis here: set TENANTGATE_TEST_REDIS_URL (.ci/run does when redis-cli ping answers)"
    ),
]


async def test_mixed_load_on_two_servers_and_two_workers_loses_nothing_and_leaks_nothing(
    test_db: DatabaseFixture, tmp_path: Path
) -> None:
    assert REDIS_URL is not None
    prefix = test_db.roles.owner.removesuffix("_owner")
    installed = Installed(urls=test_db.urls, db_role_prefix=prefix, redis_url=REDIS_URL)
    async with load_world(installed, tmp_path, tenants=3) as world:
        traffic = await Mix(world, Shape(duration_s=20, max_requests=600)).run()
        assert await settle(world) < 60
        checks = await check(world, traffic)
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
        assert not failed, "\n".join(failed)
        assert len(checks) == 8
        assert {s.op for s in traffic.samples} == set(WEIGHTS)  # every kind of operation ran
        assert traffic.directives  # charges were approved and run

        # The same checks on traffic that did not happen as recorded: each one notices.
        first, second = world.tenants[0], world.tenants[1]
        unheard = Sent(first.id, f"load-{uuid.uuid4().hex}", 200, audited=True)
        elsewhere = next(s for s in traffic.sent if s.audited and s.tenant_id == second.id)
        stray = replace(traffic, directives={**traffic.directives, uuid.uuid4(): first.id})
        lost = {**traffic.deliveries, first.id: {*traffic.deliveries[first.id], "msg_never_stored"}}
        broken = {
            "every audited request has its event in its own tenant's trail": [
                replace(traffic, sent=[*traffic.sent, unheard]),
                replace(traffic, sent=[*traffic.sent, replace(elsewhere, tenant_id=first.id)]),
            ],
            "every directive is final and its effect happened exactly once": [stray],
            "the queue ran one job per directive and per signal, each to success": [stray],
            "every accepted delivery is one processed signal, replays none": [replace(traffic, deliveries=lost)],
            "no answer to a tenant held another tenant's marker or ids": [
                replace(traffic, leaks=[f"{first.marker} saw {second.marker}"])
            ],
        }
        for name, variants in broken.items():
            for variant in variants:
                verdicts = {c.name: c.ok for c in await check(world, variant)}
                assert verdicts[name] is False, name
        key = next(iter(world.payments.effects))
        world.payments.effects[key] = 2  # the provider saw the effect twice
        verdicts = {c.name: c.ok for c in await check(world, traffic)}
        assert verdicts["every directive is final and its effect happened exactly once"] is False

        # A row of one tenant that holds another's marker: the database check finds it.
        body = json.dumps({"type": "load.event", "timestamp": 1, "data": {"copied": second.marker}}).encode()
        now = int(time.time())
        headers = {"webhook-id": "msg_leak", "webhook-timestamp": str(now),
                   "webhook-signature": sign_standard(first.webhook_secret, "msg_leak", now, body)}  # fmt: skip
        async with httpx.AsyncClient(base_url=world.bases[0]) as http:
            delivered = await http.post(f"/v1/webhooks/standard/{first.endpoint_id}", content=body, headers=headers)
        assert delivered.json() == {"received": 1, "duplicates": 0}
        verdicts = {c.name: c.ok for c in await check(world, traffic)}
        assert verdicts["no tenant's rows hold another tenant's marker or ids"] is False
