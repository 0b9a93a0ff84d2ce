"""Request rate limits and authentication-failure limits at the edge, and the 429 headers.

Authentication failures are limited per source address and per API key prefix *before* a
credential is verified: once a source has failed too often it gets 429 without another
hash being computed. Authenticated requests count against their key's and their tenant's
per-minute limits. Every refusal carries ``Retry-After`` and ``RateLimit-*`` headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request

from tenantgate.errors import Unauthenticated
from tenantgate.installation import Services

__all__ = ["guarded_authentication", "quota_headers"]

T = TypeVar("T")

_KEY_KINDS = ("tg_", "tgp_")


def quota_headers(fields: Mapping[str, Any]) -> dict[str, str]:
    """``Retry-After`` and ``RateLimit-*`` for a quota refusal's fields (limit_value, retry_after)."""
    headers: dict[str, str] = {}
    retry = fields.get("retry_after")
    if isinstance(retry, int | float):
        headers["Retry-After"] = str(int(retry))
        headers["RateLimit-Reset"] = str(int(retry))
        headers["RateLimit-Remaining"] = "0"
    cap = fields.get("limit_value")
    if isinstance(cap, int):
        headers["RateLimit-Limit"] = str(cap)
        if isinstance(fields.get("limit"), str):
            headers["RateLimit-Policy"] = f'"{fields["limit"]}";q={cap}'
    return headers


def key_prefix(authorization: str | None) -> str | None:
    """The public prefix of a tenantgate API key in an Authorization header (``tg_abc123``), if any."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    token = authorization[7:].strip()
    if not token.startswith(_KEY_KINDS):
        return None
    parts = token.split("_", 2)
    return "_".join(parts[:2])[:40] if len(parts) == 3 else None


async def guarded_authentication(request: Request, services: Services, attempt: Callable[[], Awaitable[T]]) -> T:
    """Refuse (429) a source or key prefix that failed too often; count this attempt if it fails."""
    address = request.client.host if request.client is not None else "unknown"
    prefix = key_prefix(request.headers.get("authorization"))
    await services.quotas.check_auth_allowed(address, prefix)
    try:
        return await attempt()
    except Unauthenticated:
        await services.quotas.auth_failed(address, prefix)
        raise
