"""Rate limits: short windows, many checks a second, with the ``limits`` library.

In memory by default (one process's view); on Redis when ``TENANTGATE_REDIS_URL`` is set,
so every API and worker process shares one view. Moving windows: a limit of N per minute
admits exactly N hits in any 60 seconds, also under concurrency (Redis runs each hit as
one Lua script). A fault of the store refuses with ``quota_backend_unavailable``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter

from tenantgate.errors import QuotaBackendUnavailable, QuotaExceeded
from tenantgate.quotas._storage import limits_storage

__all__ = ["Rate", "RateLimiter", "RateState"]


class Rate(StrEnum):
    """A rate limit, named as its field in :class:`~tenantgate.quotas.Limits` (or a platform one)."""

    REQUESTS_PER_KEY = "requests_per_minute_per_key"
    REQUESTS_PER_TENANT = "requests_per_minute_per_tenant"
    TOOL_CALLS = "tool_calls_per_minute"
    TOOL_CALLS_PER_TOOL = "tool_calls_per_minute_per_tool"
    OUTBOUND = "outbound_per_minute"
    OUTBOUND_PER_CHANNEL = "outbound_per_minute_per_channel"
    # Before any tenant is known: platform settings, not plan fields.
    AUTH_FAILURES_PER_ADDRESS = "auth_failures_per_minute_per_address"
    AUTH_FAILURES_PER_PREFIX = "auth_failures_per_minute_per_prefix"


@dataclass(frozen=True, slots=True)
class RateState:
    """One window's state, for ``RateLimit-*`` headers and ``GET /v1/usage``."""

    rate: Rate
    limit: int
    remaining: int
    reset_at: float  # epoch seconds

    @property
    def reset_in(self) -> int:
        return max(1, int(self.reset_at - time.time()) + 1)


class RateLimiter:
    """Hits and peeks on per-minute moving windows, keyed by the rate and its identifiers."""

    def __init__(self, redis_url: str | None = None, *, timeout_s: float = 0.5) -> None:
        storage, self.backend = limits_storage(redis_url, key_prefix="tenantgate", timeout_s=timeout_s)
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, rate: Rate, per_minute: int, *identifiers: str, cost: int = 1) -> None:
        """Count one use; raise QuotaExceeded (naming the rate and its reset) when over the limit."""
        item = RateLimitItemPerMinute(max(per_minute, 0) or 1)
        try:
            admitted = per_minute > 0 and await self._limiter.hit(item, rate.value, *identifiers, cost=cost)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        if not admitted:
            raise (await self._exceeded(rate, per_minute, item, identifiers))

    async def check(self, rate: Rate, per_minute: int, *identifiers: str) -> None:
        """Raise QuotaExceeded if one more hit would be refused, without counting one."""
        item = RateLimitItemPerMinute(max(per_minute, 0) or 1)
        try:
            allowed = per_minute > 0 and await self._limiter.test(item, rate.value, *identifiers)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        if not allowed:
            raise (await self._exceeded(rate, per_minute, item, identifiers))

    async def state(self, rate: Rate, per_minute: int, *identifiers: str) -> RateState:
        item = RateLimitItemPerMinute(max(per_minute, 0) or 1)
        try:
            stats = await self._limiter.get_window_stats(item, rate.value, *identifiers)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        remaining = stats.remaining if per_minute > 0 else 0
        return RateState(rate, per_minute, remaining, stats.reset_time)

    async def ping(self) -> bool:
        try:
            return bool(await self._storage.check())
        except Exception:  # noqa: BLE001 - a health check answers, it does not raise
            return False

    async def close(self) -> None:
        """Close the Redis connections (nothing to do in memory)."""
        bridge = getattr(self._storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()

    async def _exceeded(self, rate: Rate, per_minute: int, item: object, identifiers: tuple[str, ...]) -> QuotaExceeded:
        try:
            state = await self.state(rate, per_minute, *identifiers)
            retry = state.reset_in
        except QuotaBackendUnavailable:
            retry = 60
        return QuotaExceeded(
            f"The {rate.value} rate limit ({per_minute} a minute) is reached; retry in {retry} s.",
            limit=rate.value,
            limit_value=per_minute,
            retry_after=retry,
        )

    def _unavailable(self, exc: BaseException) -> QuotaBackendUnavailable:
        return QuotaBackendUnavailable(
            f"The rate-limit store ({self.backend}) cannot be reached; refused rather than counted as allowed.",
            backend=self.backend,
            error=type(exc).__name__,
        )
