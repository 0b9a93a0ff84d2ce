"""The capability boundary in one call: decide, audit, confirm or execute, audit the outcome.

Every edge that runs tools (the HTTP API, the agent runtime, MCP, the worker) goes
through :meth:`Boundary.call`, so each attempt gets the same gate, the same confirmation
rules and the same audit trail, whoever proposed it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.directives import IdempotencyConflict
from tenantgate.gate._confirmations import ConfirmationInfo, Confirmations
from tenantgate.gate._decision import Code, Decision, Verdict
from tenantgate.gate._directives import DirectiveRunner
from tenantgate.gate._gate import Gate, ProposedCall, args_digest
from tenantgate.tools import TOOL_NAME, Executor, Outcome, ToolEffect, ToolResult

__all__ = ["Boundary", "CallOutcome"]

_UNTRUSTED_TEXT = 200  # a planner can propose any string as a tool name or argument key; keep the trail bounded


def _printable(text: str) -> str:
    """Untrusted text made safe for the audit trail: control characters escaped, length bounded."""
    if text.isprintable():
        return text[:_UNTRUSTED_TEXT]
    return text.encode("unicode_escape").decode("ascii")[:_UNTRUSTED_TEXT]


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return _printable(value)
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {_printable(str(k)): _safe(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The decision, and then either the open confirmation or the tool's result."""

    call_id: uuid.UUID
    decision: Decision
    confirmation: ConfirmationInfo | None = None
    result: ToolResult | None = None


class Boundary:
    def __init__(
        self,
        *,
        gate: Gate,
        executor: Executor,
        confirmations: Confirmations,
        audit: AuditLog,
        directives: DirectiveRunner | None = None,
    ) -> None:
        self.gate = gate
        self._executor = executor
        self.directives = directives
        self._confirmations = confirmations
        self._audit = audit

    async def call(
        self,
        ctx: TenantContext,
        call: ProposedCall,
        *,
        confirmation_id: uuid.UUID | None = None,
        run_id: uuid.UUID | None = None,
        call_id: uuid.UUID | None = None,
        idempotency_key: str | None = None,
        channel: bool = False,
        via: str | None = None,
    ) -> CallOutcome:
        """Decide, audit, and then confirm or execute. ``run_id`` ties the call to an agent run.

        ``channel`` is for platform channel code only (the WhatsApp channel's reply): it lets
        a ``channel_only`` tool through to the rest of the decision. Edges that carry a
        planner's or a client's proposal never set it.

        A tool with an effect (write, external, destructive) runs as a directive, recorded
        under ``idempotency_key`` (default: the call id) before it happens: the same key never
        produces a second effect. ``via`` names an edge other than the REST API or a run
        (``mcp``) in the ``gate.decided`` event.
        """
        call_id = call_id or uuid.uuid4()
        decision = await self.gate.decide(ctx, call, confirmed=confirmation_id is not None, channel=channel)
        if decision.needed_confirmation:
            # Redeemed only now, after every other check (quotas too) passed: a refused call
            # does not burn the human's approval.
            assert confirmation_id is not None
            if not await self._confirmations.redeem(ctx, confirmation_id, decision):
                decision = replace(
                    decision,
                    verdict=Verdict.DENY,
                    code=Code.CONFIRMATION_INVALID,
                    reason="The confirmation is not approved for exactly this call, was used already, or expired.",
                    needed_confirmation=False,
                )
        await self._audit.record(ctx, self._decided(call, call_id, decision, confirmation_id, run_id, via))

        if decision.verdict is Verdict.CONFIRM:
            confirmation = await self._confirmations.request(ctx, decision)
            await self._audit.record(
                ctx,
                AuditEvent(
                    action="confirmation.requested", decision="confirm", code=decision.code.value, tool=decision.tool,
                    payload={"call_id": str(call_id), "confirmation_id": str(confirmation.id),
                             "args_digest": decision.args_digest, "expires_at": confirmation.expires_at.isoformat()},
                ),
            )  # fmt: skip
            return CallOutcome(call_id, decision, confirmation=confirmation)
        if decision.verdict is not Verdict.ALLOW:
            return CallOutcome(call_id, decision)

        assert decision.arguments is not None
        try:
            result = await self._execute(ctx, decision, call_id, run_id, idempotency_key)
        except IdempotencyConflict:
            # A key reused for another call: refused with nothing done; recorded, since a run of
            # these is how a replaying or confused client shows itself (an alert rule counts them).
            await self._audit.record(
                ctx,
                AuditEvent(action="tool.idempotency_conflict", decision="deny", code=IdempotencyConflict.code,
                           tool=decision.tool, payload={"call_id": str(call_id)}),
            )  # fmt: skip
            raise
        pending = result.outcome is Outcome.PENDING  # a directive still running: its own rows say how it ends
        await self._audit.record(
            ctx,
            AuditEvent(
                action="tool.deferred" if pending else "tool.executed",
                decision=None if pending else result.outcome.value, tool=decision.tool,
                payload={"call_id": str(call_id), "duration_ms": round(result.duration_ms, 2),
                         **({"run_id": str(run_id)} if run_id else {}),
                         **({"directive_id": str(result.directive_id)} if result.directive_id else {}),
                         **({"error": result.error} if result.error else {})},
            ),
        )  # fmt: skip
        return CallOutcome(call_id, decision, result=result)

    async def _execute(
        self,
        ctx: TenantContext,
        decision: Decision,
        call_id: uuid.UUID,
        run_id: uuid.UUID | None,
        idempotency_key: str | None,
    ) -> ToolResult:
        assert decision.arguments is not None
        tool = self.gate.registry.get(decision.tool)
        if self.directives is not None and tool is not None and tool.spec.effect is not ToolEffect.READ:
            return await self.directives.submit(
                ctx, decision.tool, decision.arguments,
                args_digest=decision.args_digest or args_digest(decision.arguments),
                call_id=call_id, run_id=run_id, idempotency_key=idempotency_key,
            )  # fmt: skip
        return await self._executor.run(ctx, decision.tool, decision.arguments, call_id=call_id, run_id=run_id)

    @staticmethod
    def _decided(
        call: ProposedCall,
        call_id: uuid.UUID,
        decision: Decision,
        confirmation_id: uuid.UUID | None,
        run_id: uuid.UUID | None,
        via: str | None = None,
    ) -> AuditEvent:
        # The summary can echo what the planner sent (unknown names, argument keys in errors).
        payload: dict[str, Any] = {"call_id": str(call_id), **_safe(decision.summary())}
        if run_id is not None:
            payload["run_id"] = str(run_id)
        if not TOOL_NAME.fullmatch(call.tool):
            payload["proposed_tool"] = _printable(call.tool)
        if decision.arguments is not None:
            payload["args_digest"] = decision.args_digest or args_digest(decision.arguments)
        if confirmation_id is not None:
            payload["confirmation_id"] = str(confirmation_id)
        if via is not None:
            payload["via"] = via
        return AuditEvent(
            action="gate.decided",
            decision=decision.verdict.value,
            code=decision.code.value,
            tool=call.tool if TOOL_NAME.fullmatch(call.tool) else None,
            payload=payload,
        )
