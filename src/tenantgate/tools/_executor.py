"""Runs allowed tool calls: with a time limit, output validated and redacted, result marked as untrusted data.

A tool that crashes or hangs yields a ``failed`` or ``timeout`` result, never an exception
that escapes into the request: outcomes are recorded, not lost. A tool that failed on a
tenantgate error (the key provider or the database down while it opened a credential) keeps
that error's ``code``, so the edge can answer with the platform's refusal, not a tool failure.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from tenantgate.context import TenantContext
from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger
from tenantgate.redact import Redactor
from tenantgate.tools._registry import ToolRegistry
from tenantgate.tools._resources import ToolCall, ToolResources
from tenantgate.tracing import span

__all__ = ["Executor", "Outcome", "ToolResult"]

_log = get_logger("tenantgate.tools")
_MAX_ERROR = 500


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    PENDING = "pending"  # a directive recorded but not finished within the call's time limit


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool produced. ``output`` is data from outside the boundary: never instructions."""

    tool: str
    call_id: uuid.UUID
    outcome: Outcome
    output: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    directive_id: uuid.UUID | None = None  # set when the call ran as a directive (a recorded side effect)
    code: str | None = None  # the tenantgate error code the tool failed on, if it failed on one

    def for_model(self) -> dict[str, Any]:
        """The envelope a planner receives: provenance and an explicit untrusted marker."""
        envelope = {
            "tool": self.tool,
            "call_id": str(self.call_id),
            "outcome": self.outcome.value,
            "untrusted": True,
            "data": self.output,
            "error": self.error,
        }
        if self.directive_id is not None:
            envelope["directive_id"] = str(self.directive_id)
        return envelope


def _json_safe(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    json.dumps(value)  # raises TypeError/ValueError for anything that is not plain JSON
    return value


class Executor:
    def __init__(
        self, *, registry: ToolRegistry, resources: ToolResources | None = None, redactor: Redactor | None = None
    ) -> None:
        self._registry = registry
        self._resources = resources or ToolResources()
        # Output and error text pass through it before the result leaves: neither the HTTP
        # caller nor the model (``ToolResult.for_model``) ever receives an echoed secret.
        self._redactor = redactor if redactor is not None else Redactor()

    async def run(
        self,
        ctx: TenantContext,
        tool_name: str,
        arguments: Mapping[str, Any],
        *,
        call_id: uuid.UUID,
        run_id: uuid.UUID | None = None,
        directive_id: uuid.UUID | None = None,
    ) -> ToolResult:
        """Run one call the gate allowed (the caller passes the decision's validated arguments).

        ``directive_id`` is set when the call runs as a directive: handlers pass it to
        providers as their idempotency key (``ToolCall.idempotency_key``).
        """
        with span("tenantgate.tool", ctx, tool=tool_name) as current:
            result = await self._run(ctx, tool_name, arguments, call_id, run_id, directive_id)
            if current is not None:
                current.set_attribute("tenantgate.outcome", result.outcome.value)
            return result

    async def _run(
        self,
        ctx: TenantContext,
        tool_name: str,
        arguments: Mapping[str, Any],
        call_id: uuid.UUID,
        run_id: uuid.UUID | None,
        directive_id: uuid.UUID | None,
    ) -> ToolResult:
        tool = self._registry.get(tool_name)
        if tool is None:
            return ToolResult(tool_name, call_id, Outcome.FAILED, error="tool is not registered in this process")
        spec = tool.spec
        started = time.perf_counter()

        def result(
            outcome: Outcome, output: Any = None, error: str | None = None, code: str | None = None
        ) -> ToolResult:
            elapsed = (time.perf_counter() - started) * 1000
            # Redacted before it is cut short, so no half of a secret survives the cut.
            error = self._redactor.redact_text(error)[:_MAX_ERROR] if error else None
            return ToolResult(
                spec.name,
                call_id,
                outcome,
                self._redactor.redact(output),
                error,
                elapsed,
                directive_id=directive_id,
                code=code,
            )

        try:
            args = spec.arguments.model_validate(dict(arguments))
            call = ToolCall(
                ctx=ctx, call_id=call_id, spec=spec, run_id=run_id, resources=self._resources,
                secrets=self._redactor.known, directive_id=directive_id,
            )  # fmt: skip
            raw = await asyncio.wait_for(tool.handler(call, args), spec.timeout_s)
        except TimeoutError:
            return result(Outcome.TIMEOUT, error=f"{spec.name} did not finish within {spec.timeout_s:g} s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a tool's bug is its call's failure, not the server's
            _log.warning("tool.failed", tool=spec.name, call_id=str(call_id), error_type=type(exc).__name__)
            code = exc.code if isinstance(exc, TenantgateError) else None
            return result(Outcome.FAILED, error=f"{type(exc).__name__}: {exc}", code=code)
        try:
            output = spec.output.model_validate(raw).model_dump(mode="json") if spec.output else _json_safe(raw)
        except (ValidationError, TypeError, ValueError) as exc:
            return result(Outcome.FAILED, error=f"{spec.name} returned output that does not match its schema: {exc}")
        return result(Outcome.SUCCEEDED, output)
