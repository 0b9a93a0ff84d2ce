"""Rendering console pages: one Jinja2 environment (autoescaped), and the headers every page carries."""

from __future__ import annotations

import json
from datetime import datetime
from importlib.resources import files
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = ["STATIC", "render", "security_headers"]

_env = Environment(
    loader=PackageLoader("tenantgate.api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


_env.filters["when"] = _when
_env.filters["pretty"] = _pretty

STATIC = {
    "console.js": ((files(__package__) / "static" / "console.js").read_text("utf-8"), "text/javascript"),
    "console.css": ((files(__package__) / "static" / "console.css").read_text("utf-8"), "text/css"),
}


def security_headers(response: Response) -> Response:
    """Console pages are per user: never cached. The CSP (our own script and stylesheet only, no
    inline code, no CDN), framing and sniffing headers come from the app's SecurityHeadersMiddleware."""
    response.headers["Cache-Control"] = "no-store"
    return response


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``templates/``, with the console's security headers."""
    html = _env.get_template(template).render(**context)
    return security_headers(HTMLResponse(html, status_code=status_code))  # type: ignore[return-value]
