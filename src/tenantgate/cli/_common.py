"""Shared plumbing for the CLI commands: settings, running an action on the services, parsing."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.redact import Redactor

__all__ = [
    "TenantOpt",
    "err",
    "load_settings",
    "out",
    "parse_duration",
    "parse_expiry",
    "parse_time",
    "run",
    "tenant_context",
]

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
T = TypeVar("T")

TenantOpt = Annotated[uuid.UUID, typer.Option("--tenant", help="Tenant id.")]


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; ``overrides`` (command-line options) win over it."""
    return Settings(**overrides)


def run(action: Callable[[Services], Awaitable[T]]) -> T:
    """Open the installation, run ``action`` on verified services, close them."""
    configured = load_settings()
    redactor = Redactor()
    configure_logging("warning", redactor=redactor)
    installation = Installation.open(configured)

    async def go() -> T:
        services = Services.build(installation, redactor=redactor)
        try:
            await services.db.verify()
            return await action(services)
        finally:
            await services.db.dispose()

    return asyncio.run(go())


def tenant_context(services: Services, tenant_id: uuid.UUID) -> TenantContext:
    """The platform's own context inside one tenant, for tenant-scoped CLI commands."""
    return system_context(tenant_id, mode=services.settings.mode, request_id=f"cli-{uuid.uuid4().hex[:12]}")


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"Cannot read {text!r} as a duration: use e.g. 90s, 15m, 12h or 7d.")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with a zone."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"Cannot read {text!r} as an ISO time, e.g. 2027-01-01T00:00:00+00:00.") from exc
    if when.tzinfo is None:
        raise InvalidInput("Give the time with a zone, e.g. 2027-01-01T00:00:00+00:00.")
    return when


def parse_expiry(text: str) -> datetime:
    """A duration from now (``30d``), or an ISO 8601 time with a zone."""
    if _DURATION.fullmatch(text.strip()):
        return datetime.now(UTC) + parse_duration(text)
    return parse_time(text)
