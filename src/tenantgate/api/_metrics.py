"""``GET /metrics`` for Prometheus, and the middleware that counts requests by route template.

Access: with ``TENANTGATE_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>``
(compared in constant time). Without a token, only a request from a loopback client to a
loopback address that carries no ``Forwarded``/``X-Forwarded-For`` header (a reverse proxy
on the same host would otherwise publish it): anything else gets 404, as if there were no
such route. The series are this process's: scrape each process (see the README).
"""

from __future__ import annotations

import hmac
import time
from ipaddress import ip_address

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantgate.api._deps import ServicesDep
from tenantgate.metrics import CONTENT_TYPE, Metrics

__all__ = ["MetricsMiddleware", "router"]

router = APIRouter(tags=["ops"])


def _loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _allowed(request: Request, token: str | None) -> bool:
    if token is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
    scope = request.scope
    client, server = scope.get("client"), scope.get("server")
    forwarded = "forwarded" in request.headers or "x-forwarded-for" in request.headers
    return not forwarded and client is not None and server is not None and _loopback(client[0]) and _loopback(server[0])


# Not in the OpenAPI document: to anyone but its scraper it answers 404 as if it did not exist, and its body is
# Prometheus text for a scraper, not an API for clients.
@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    settings = services.settings
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    if not settings.metrics_enabled or not _allowed(request, token):
        return Response(b'{"code":"not_found","message":"Not Found"}', status_code=404,
                        media_type="application/json")  # fmt: skip
    await services.queue_sampler.refresh()
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)


class MetricsMiddleware:
    """Counts each HTTP request by method, route template (not the raw path) and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) if route is not None else None
            # An unmatched path is one label, whatever was asked: scanners do not create series.
            self._metrics.http_request(scope["method"], template or "unmatched", status, time.perf_counter() - started)
