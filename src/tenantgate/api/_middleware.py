"""Request ids and one JSON log line per request, as plain ASGI (no per-request task)."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantgate.logs import get_logger

__all__ = ["RequestContextMiddleware"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_log = get_logger("tenantgate.http")


class RequestContextMiddleware:
    """Assigns X-Request-ID, binds it for logging and logs the outcome with tenant and principal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The auth dependency records who the caller was in the request state.
            _log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                tenant_id=state.get("tenant_id"),
                principal_id=state.get("principal_id"),
            )
            structlog.contextvars.clear_contextvars()
