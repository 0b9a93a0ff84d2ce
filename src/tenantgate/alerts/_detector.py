"""Counting windows for the anomaly rules, shared across processes through the ``limits`` storage.

In memory by default (one process's counts); on Redis when ``TENANTGATE_REDIS_URL`` is set,
like the rate limits, so every process adds to the same count. Windows are fixed and
aligned to the epoch, and the window start is part of the key, so every process agrees on
which window an event falls in. A window fires once, when its count *reaches* the
threshold; the alerts table's unique key is the backstop that makes it one alert even when
several processes (each with its own memory counts) get there.
"""

from __future__ import annotations

from tenantgate.quotas import limits_storage

__all__ = ["WindowCounter", "window_start"]


def window_start(now: float, window_s: int) -> int:
    """The epoch second the fixed window holding ``now`` starts at."""
    return int(now // window_s) * window_s


class WindowCounter:
    def __init__(self, redis_url: str | None = None, *, timeout_s: float = 0.5) -> None:
        self._storage, self.backend = limits_storage(redis_url, key_prefix="tenantgate-alerts", timeout_s=timeout_s)

    async def add(self, key: str, *, window_s: int) -> int:
        """Count one event under ``key`` (which names its window); the count so far."""
        # Kept a little past the window's end, then gone: memory stays bounded by live windows.
        return int(await self._storage.incr(key, window_s + 60))

    async def close(self) -> None:
        """Close the Redis connections (nothing to do in memory)."""
        bridge = getattr(self._storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None:
            await client.aclose()
