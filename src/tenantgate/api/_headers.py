"""Security headers on every HTTP response, as plain ASGI.

Every response says: don't sniff content types, never render me in a frame, send no referrer.
API responses carry a CSP that allows nothing at all (they are JSON, never a page) and
``Cache-Control: no-store`` (they are per caller). Pages under ``/console`` get a strict CSP:
scripts, styles, images and form targets from this origin only, no inline code, no plugins.
HSTS is sent only over HTTPS (the scheme uvicorn saw, or that a trusted proxy forwarded): a
browser ignores it over plain HTTP, and sending it from a loopback development server would only
confuse. The interactive API docs (``/docs``, ``/redoc``) load their page scripts from a CDN and
so are left without a CSP; they show the schema only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeadersMiddleware"]

HSTS = b"max-age=63072000; includeSubDomains"
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CONSOLE_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_DOCS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    """Adds the headers above unless the route already chose its own value for one of them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = list(_ALWAYS)
        if path == "/console" or path.startswith("/console/"):
            extra.append((b"content-security-policy", CONSOLE_CSP))
        elif not path.startswith(_DOCS):
            extra.append((b"content-security-policy", API_CSP))
            extra.append((b"cache-control", b"no-store"))
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", HSTS))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in extra if name not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
