"""The gate's quota hook over a check that raises: ``quota_exceeded`` or ``quota_backend_unavailable``.

The check (``Quotas.check_tool_call`` in the quotas service) counts the call against the
tenant's rate limits and reserves its budgets. Any failure other than "over the limit"
denies with ``quota_backend_unavailable``: a quota that cannot be checked is not an allow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from tenantgate.context import TenantContext
from tenantgate.errors import QuotaBackendUnavailable, QuotaExceeded, TenantgateError
from tenantgate.gate._decision import Code, Decision, Verdict
from tenantgate.gate._gate import QuotaHook
from tenantgate.logs import get_logger
from tenantgate.tools import Capability, ToolSpec

__all__ = ["ToolCallCheck", "quota_hook"]

_log = get_logger("tenantgate.gate")

# (ctx, tool name, outbound channel or None) -> anything; raises when the call is over a limit.
ToolCallCheck = Callable[..., Awaitable[object]]


def quota_hook(check: ToolCallCheck) -> QuotaHook:
    """A QuotaHook for ``Gate(quota=...)``. Tools with ``messaging.outbound`` name their channel."""

    async def hook(ctx: TenantContext, spec: ToolSpec, decision: Decision) -> Decision | None:
        channel = (spec.integration or spec.name) if Capability.MESSAGING_OUTBOUND in spec.capabilities else None
        try:
            await check(ctx, spec.name, outbound_channel=channel)
        except QuotaExceeded as exc:
            return _deny(decision, Code.QUOTA_EXCEEDED, exc)
        except QuotaBackendUnavailable as exc:
            _log.warning("gate.quota_unavailable", tenant_id=str(ctx.tenant_id), backend=exc.fields.get("backend"))
            return _deny(decision, Code.QUOTA_BACKEND_UNAVAILABLE, exc)
        except Exception as exc:  # noqa: BLE001 - whatever fails here must deny, never allow
            _log.exception("gate.quota_error", tenant_id=str(ctx.tenant_id))
            error = QuotaBackendUnavailable(f"The quota check failed ({type(exc).__name__}); refused.")
            return _deny(decision, Code.QUOTA_BACKEND_UNAVAILABLE, error)
        return None

    return hook


def _deny(decision: Decision, code: Code, exc: TenantgateError) -> Decision:
    # limit, reset_at and retry_after travel in details: the API turns them into headers.
    details = ({k: v for k, v in exc.fields.items() if k != "error"},) if exc.fields else ()
    return replace(decision, verdict=Verdict.DENY, code=code, reason=exc.message, details=details,
                   needed_confirmation=False)  # fmt: skip
