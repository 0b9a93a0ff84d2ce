"""The ``limits`` storage every counting window uses: in memory (one process's view), or on Redis
(shared by every API and worker process) when a URL is configured."""

from __future__ import annotations

from limits.aio.storage import MemoryStorage, RedisStorage, Storage

__all__ = ["limits_storage"]


def limits_storage(redis_url: str | None, *, key_prefix: str, timeout_s: float) -> tuple[Storage, str]:
    """The storage and its backend's name (``"redis"`` or ``"memory"``).

    A short socket timeout: a stalled Redis refuses quickly instead of holding every request,
    and the caller fails closed.
    """
    if not redis_url:
        return MemoryStorage(), "memory"
    url = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
    storage = RedisStorage(
        url,
        implementation="redispy",
        key_prefix=key_prefix,
        wrap_exceptions=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return storage, "redis"
