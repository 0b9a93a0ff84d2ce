"""Optional OpenTelemetry spans: the agent turn, the gate, tool execution, database transactions.

Off unless :func:`configure_tracing` turns it on (``TENANTGATE_OTEL_ENABLED``) and the
``otel`` extra (``opentelemetry-api``) is installed; off, :func:`span` is one global read
and a bare ``yield``. Like logging, this is process-wide: it is configured once at start-up
by the edges, never read from the environment here.

Attributes are ids and names only (tenant id, request id, tool name, outcome): never
arguments, results or secrets, which is why :func:`span` takes a fixed set of keywords
rather than a payload.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tenantgate.context import TenantContext

__all__ = ["configure_tracing", "span", "tracing_enabled"]

_MAX_TEXT = 100  # a tool name comes from a planner: bounded like the audit trail bounds it
_tracer: Any = None


def configure_tracing(enabled: bool, *, provider: Any = None) -> bool:
    """Turn spans on or off; True if they are on. ``provider`` overrides the global tracer provider.

    Without ``provider`` the OpenTelemetry API's global provider is used: set one with the
    SDK (or run under ``opentelemetry-instrument``) to export spans anywhere.
    """
    global _tracer
    if not enabled:
        _tracer = None
        return False
    try:
        from opentelemetry import trace
    except ImportError:
        _tracer = None
        return False
    source = provider if provider is not None else trace.get_tracer_provider()
    _tracer = source.get_tracer("tenantgate")
    return True


def tracing_enabled() -> bool:
    return _tracer is not None


@contextmanager
def span(
    name: str,
    ctx: TenantContext | None = None,
    *,
    tool: str | None = None,
    role: str | None = None,
    tenant_id: str | None = None,
) -> Iterator[Any]:
    """A span named ``name`` with the tenant and request ids of ``ctx``; yields it (None when off).

    Callers may set a few more id-like attributes on the yielded span (``span.set_attribute``)
    when it is not None, for outcomes known only at the end (verdict, code).
    """
    tracer = _tracer
    if tracer is None:
        yield None
        return
    attributes: dict[str, str] = {}
    if ctx is not None:
        attributes["tenantgate.tenant_id"] = str(ctx.tenant_id)
        attributes["tenantgate.request_id"] = ctx.request_id[:_MAX_TEXT]
        attributes["tenantgate.principal_kind"] = ctx.kind.value
    elif tenant_id is not None:
        attributes["tenantgate.tenant_id"] = tenant_id
    if tool is not None:
        attributes["tenantgate.tool"] = tool[:_MAX_TEXT]
    if role is not None:
        attributes["tenantgate.db.role"] = role
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current
