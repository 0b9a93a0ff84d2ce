"""Rate limits: exact moving windows in memory and on Redis (shared by processes), failing closed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest

from tenantgate.errors import QuotaBackendUnavailable, QuotaExceeded
from tenantgate.quotas import Rate, RateLimiter
from tests.faults import PgProxy

REDIS_URL = os.environ.get("TENANTGATE_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="no Redis here: set TENANTGATE_TEST_REDIS_URL (.ci/run does when redis-cli ping answers)"
)


async def admitted(limiter: RateLimiter, n: int, per_minute: int, *ids: str) -> int:
    async def one() -> bool:
        try:
            await limiter.hit(Rate.TOOL_CALLS, per_minute, *ids)
        except QuotaExceeded:
            return False
        return True

    return sum(await asyncio.gather(*(one() for _ in range(n))))


async def test_memory_window_admits_exactly_the_limit_per_identifier() -> None:
    limiter = RateLimiter()
    tenant_a, tenant_b = str(uuid.uuid4()), str(uuid.uuid4())
    assert await admitted(limiter, 30, 10, tenant_a) == 10
    assert await admitted(limiter, 5, 10, tenant_b) == 5  # another tenant's window is its own
    with pytest.raises(QuotaExceeded) as refused:
        await limiter.hit(Rate.TOOL_CALLS, 10, tenant_a)
    assert refused.value.fields["limit"] == "tool_calls_per_minute"
    assert 1 <= refused.value.fields["retry_after"] <= 61
    state = await limiter.state(Rate.TOOL_CALLS, 10, tenant_b)
    assert (state.limit, state.remaining) == (10, 5)


async def test_a_zero_limit_refuses_everything() -> None:
    with pytest.raises(QuotaExceeded):
        await RateLimiter().hit(Rate.OUTBOUND, 0, str(uuid.uuid4()))


_WORKER = """
import asyncio, sys
from tenantgate.errors import QuotaExceeded
from tenantgate.quotas import Rate, RateLimiter

async def main() -> None:
    limiter = RateLimiter(sys.argv[1])
    async def one() -> bool:
        try:
            await limiter.hit(Rate.TOOL_CALLS, 10, sys.argv[2])
        except QuotaExceeded:
            return False
        return True
    print(sum(await asyncio.gather(*(one() for _ in range(25)))))

asyncio.run(main())
"""


@pytest.mark.redis
@needs_redis
def test_two_processes_sharing_redis_admit_exactly_the_limit() -> None:
    assert REDIS_URL is not None
    key = str(uuid.uuid4())
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, REDIS_URL, key], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counts = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert sum(counts) == 10, counts  # 50 concurrent hits from two processes, a limit of 10


@pytest.mark.redis
@needs_redis
async def test_redis_cut_mid_way_refuses_then_recovers() -> None:
    assert REDIS_URL is not None
    proxy = PgProxy(REDIS_URL.replace("redis://", "postgresql://x@", 1))  # a plain TCP proxy to Redis
    await proxy.start()
    limiter = RateLimiter(f"redis://127.0.0.1:{proxy.port}/0", timeout_s=0.3)
    key = str(uuid.uuid4())
    try:
        await limiter.hit(Rate.TOOL_CALLS, 10, key)
        await proxy.cut()
        with pytest.raises(QuotaBackendUnavailable) as refused:
            await limiter.hit(Rate.TOOL_CALLS, 10, key)
        assert refused.value.code == "quota_backend_unavailable"
        assert refused.value.fields["backend"] == "redis"
        await proxy.start()
        await limiter.hit(Rate.TOOL_CALLS, 10, key)
        assert (await limiter.state(Rate.TOOL_CALLS, 10, key)).remaining == 8
    finally:
        await limiter.close()
        await proxy.cut()


async def test_redis_on_a_closed_port_refuses() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1/0", timeout_s=0.3)
    try:
        with pytest.raises(QuotaBackendUnavailable):
            await limiter.hit(Rate.REQUESTS_PER_TENANT, 100, str(uuid.uuid4()))
        with pytest.raises(QuotaBackendUnavailable):
            await limiter.check(Rate.AUTH_FAILURES_PER_ADDRESS, 100, "127.0.0.1")
        assert not await limiter.ping()
    finally:
        await limiter.close()
