"""The turn loop: user message -> planner -> schema check -> gate -> tool -> data block -> ... -> reply.

Each turn is a *run*. The agent acts as an AI execution context derived from the caller
(``ctx.for_ai_execution(run_id)``), so the gate sees ``ai_execution`` acting for the caller and
every tool call goes through the boundary with the run id. The loop is bounded by a step
limit, a wall-clock limit and cancellation; every way a run can end, including a crash, is
recorded on the run row with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.agent._choice import PlannerFactory
from tenantgate.agent._holds import Claim, Hold, HoldStore, lookup_context
from tenantgate.agent._live import LiveRun
from tenantgate.agent._planner import (
    AssistantTurn,
    Conversation,
    Plan,
    PlannedCall,
    Planner,
    ToolResultItem,
    ToolResults,
    Usage,
    UserTurn,
)
from tenantgate.agent._prompt import data_block, system_prompt
from tenantgate.agent._runs import RunInfo, RunStatus, RunStore
from tenantgate.agent._sessions import HTTP_CHANNEL, MAX_MESSAGE, MessageInfo, SessionStore
from tenantgate.audit import AuditLog
from tenantgate.context import PrincipalKind, TenantContext
from tenantgate.errors import InvalidInput, PermissionDenied, QuotaExceeded, TenantgateError
from tenantgate.gate import Boundary, PolicySource, ProposedCall, TenantView, Verdict, args_digest
from tenantgate.logs import get_logger
from tenantgate.quotas import Quotas, TokenReservation
from tenantgate.redact import Redactor
from tenantgate.store import Database
from tenantgate.tools import Outcome, ToolRegistry, ToolSpec
from tenantgate.tracing import span

__all__ = ["AgentRuntime", "ResumeQueue", "RuntimeLimits", "TurnResult"]

ResumeQueue = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]  # (tenant, run): resume it on a worker

_log = get_logger("tenantgate.agent")
_TEXT = 200  # model-proposed names echoed into events are bounded
_SWEEP_S = 15.0  # how often a process ends runs whose confirmation expired undecided


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeLimits:
    step_limit: int = 8  # planner answers per run
    time_limit_s: float = 120.0  # wall clock per run


@dataclass(frozen=True, slots=True)
class TurnResult:
    """How a run ended: the reply, or what a human must confirm, or why it failed."""

    run_id: uuid.UUID
    session_id: uuid.UUID
    status: RunStatus
    reply: str | None
    steps: int
    usage: Usage
    confirmation_id: uuid.UUID | None = None
    error_code: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": str(self.run_id),
            "session_id": str(self.session_id),
            "status": self.status.value,
            "reply": self.reply,
            "steps": self.steps,
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
            "confirmation_id": str(self.confirmation_id) if self.confirmation_id else None,
            "error": {"code": self.error_code, "message": self.reason} if self.error_code else None,
        }


class _Ended(Exception):
    """Ends the loop with an outcome other than a reply."""

    def __init__(
        self,
        status: RunStatus,
        code: str | None,
        reason: str,
        confirmation_id: uuid.UUID | None = None,
        expires_at: datetime | None = None,
    ):
        super().__init__(reason)
        self.status, self.code, self.reason, self.confirmation_id = status, code, reason, confirmation_id
        self.expires_at = expires_at
        # Set on the way out of the plan's calls: the results so far and the calls from the held one on.
        self.calls: tuple[tuple[ToolResultItem, ...], tuple[PlannedCall, ...]] = ((), ())


@dataclass(frozen=True, slots=True)
class _Carry:
    """What a resumed run continues with: the hold, and the approved confirmation for its held call."""

    hold: Hold
    confirmation_id: uuid.UUID


def _short(text: str) -> str:
    return text[:_TEXT] if text.isprintable() else text.encode("unicode_escape").decode("ascii")[:_TEXT]


def _schema_errors(spec: ToolSpec, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's arguments checked against the tool's schema, before the gate sees them."""
    unknown = [_short(str(k)) for k in arguments if k not in spec.argument_names]
    if unknown:
        return [{"loc": [name], "msg": "unknown argument", "type": "extra_forbidden"} for name in unknown]
    try:
        spec.arguments.model_validate(arguments)
    except ValidationError as exc:
        return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    except (TypeError, ValueError) as exc:
        return [{"loc": [], "msg": str(exc)[:_TEXT], "type": "value_error"}]
    return []


class SkillLayer(Protocol):
    """The tenant's enabled skills as prompt text (``tenantgate.skills.SkillStore``)."""

    async def prompt_layer(self, ctx: TenantContext) -> str: ...


def _input_estimate(conversation: Conversation) -> int:
    """An upper estimate of a request's input tokens (about 3 characters a token), reserved up front."""
    return max(1, len(repr(conversation)) // 3)


class AgentRuntime:
    """Runs agent turns for sessions; also the outbox the ``message`` tool delivers through."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        boundary: Boundary,
        registry: ToolRegistry,
        policies: PolicySource,
        planners: PlannerFactory,
        redactor: Redactor,
        skills: SkillLayer | None = None,
        limits: RuntimeLimits | None = None,
        quotas: Quotas | None = None,
        resume_queue: ResumeQueue | None = None,
    ) -> None:
        self.sessions = SessionStore(db=db, audit=audit)
        self._quotas = quotas
        self.runs = RunStore(db=db, audit=audit, redactor=redactor)
        self._db = db
        self._boundary = boundary
        self._registry = registry
        self._policies = policies
        self._planners = planners
        self._skills = skills
        self._limits = limits or RuntimeLimits()
        self._live: dict[uuid.UUID, LiveRun] = {}
        self.holds = HoldStore(db=db, audit=audit)
        self._resume_queue = resume_queue
        self._background: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # --- starting, awaiting, cancelling -------------------------------------------------

    async def start_turn(self, ctx: TenantContext, session_id: uuid.UUID, text: str) -> LiveRun:
        """Record the run and the user's message, then run the turn in the background."""
        if ctx.kind is PrincipalKind.AI_EXECUTION:
            raise PermissionDenied("An AI execution cannot start another agent run.")
        if not text.strip() or len(text) > MAX_MESSAGE:
            raise InvalidInput(f"A message needs 1 to {MAX_MESSAGE} characters of text.")
        view = await self._policies.view(ctx)
        choice = self._planners.choice(view)
        run_id = uuid.uuid4()
        model = self._planners.model_for(choice)
        execution = ctx.for_ai_execution(run_id)
        async with self._db.tenant(ctx) as conn:
            await self.sessions.get_in(conn, ctx, session_id)
            history = await self.sessions.history(conn, ctx, session_id)
            await self.runs.start(
                conn,
                ctx,
                run_id=run_id,
                session_id=session_id,
                execution=execution,
                planner=choice.provider,
                model=model,
            )
            await self.sessions.add_in(conn, ctx, session_id, role="user", content=text, run_id=run_id)
            started = {"session_id": str(session_id), "execution_id": str(execution.principal_id)}
            written = await self.runs.insert_events(conn, ctx, run_id, [(1, "started", started, None)])
            await self.runs.audit_started(conn, ctx, run_id=run_id, session_id=session_id, planner=choice.provider,
                                          model=model)  # fmt: skip
        live = LiveRun(ctx=ctx, run_id=run_id, session_id=session_id, store=self.runs, written=written)
        skills = await self._skills.prompt_layer(ctx) if self._skills is not None else ""
        # The tenant layer: its own instructions, then its enabled skills; both below the platform rules.
        conversation = Conversation(system_prompt("\n\n".join(p for p in (choice.instructions, skills) if p)))
        conversation.turns.extend(
            UserTurn(m.content) if m.role == "user" else AssistantTurn(m.content) for m in history
        )
        conversation.turns.append(UserTurn(text))
        self._live[run_id] = live
        live.task = asyncio.create_task(self._drive(ctx, execution, view, live, conversation))
        return live

    async def run_turn(self, ctx: TenantContext, session_id: uuid.UUID, text: str) -> TurnResult:
        """Start a turn and wait for its end. A caller that goes away does not stop the run."""
        live = await self.start_turn(ctx, session_id, text)
        assert live.task is not None
        result: TurnResult = await asyncio.shield(live.task)
        return result

    async def cancel(self, ctx: TenantContext, run_id: uuid.UUID) -> RunInfo:
        """Flag the run; if it runs in this process, stop it now. It is recorded as cancelled."""
        info = await self.runs.request_cancel(ctx, run_id)
        live = self._live.get(run_id)
        if live is not None and live.ctx.tenant_id == ctx.tenant_id and live.task is not None:
            live.task.cancel()
            await asyncio.wait({live.task})
            info = await self.runs.get(ctx, run_id, with_events=False)
        return info

    def live(self, ctx: TenantContext, run_id: uuid.UUID) -> LiveRun | None:
        live = self._live.get(run_id)
        return live if live is not None and live.ctx.tenant_id == ctx.tenant_id else None

    # --- resuming a run once its confirmation is decided -----------------------------------

    async def confirmation_decided(self, ctx: TenantContext, confirmation_id: uuid.UUID) -> None:
        """A human approved or denied a confirmation: the run held on it (if any) continues or ends.

        Returns at once: the run resumes on a worker (directive queue) or in this process's background.
        """
        run_id = await self.holds.run_for(ctx, confirmation_id)
        if run_id is None:
            return
        if self._resume_queue is not None:
            await self._resume_queue(ctx.tenant_id, run_id)
            return
        task = asyncio.create_task(self._resume_logged(ctx.tenant_id, run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resume_logged(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
        try:
            await self.resume(tenant_id, run_id)
        except Exception as exc:  # noqa: BLE001 - in the background there is no caller: logged, not lost
            _log.exception("run.resume_failed", run_id=str(run_id), error_type=type(exc).__name__)

    async def expire_held(self, *, limit: int = 100) -> int:
        """End runs whose confirmation expired undecided (``confirmation_expired``); how many ended."""
        ended = 0
        for tenant_id, run_id in await self.holds.expired(limit=limit):
            ended += await self.resume(tenant_id, run_id) is not None
        return ended

    def start(self, *, sweep_every_s: float = _SWEEP_S) -> None:
        """Sweep expired holds in the background of this process (call on the serving loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(sweep_every_s))

    async def stop(self) -> None:
        """Stop the sweeper and wait for the runs resuming in this process's background."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait({self._sweeper})
            self._sweeper = None
        while self._background:
            await asyncio.wait(set(self._background))

    async def _sweep(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.expire_held()
            except TenantgateError as exc:  # the database is away: the next sweep tries again
                _log.warning("runs.sweep_failed", code=exc.code)

    async def resume(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> TurnResult | None:
        """Continue (approved) or end (denied, expired) a held run; None when there is nothing to do.

        Exactly once: the claim is a conditional update (``awaiting_confirmation -> running``), so a
        second approval, another process or the expiry sweep racing for the same run finds nothing.
        The run continues as before: an AI execution context acting for the principal that started
        it, within what is left of its step and wall-clock limits.
        """
        lookup = lookup_context(tenant_id, self._registry.mode, run_id)
        claim = await self.holds.claim(lookup, run_id, now=datetime.now(UTC))
        if claim is None:
            return None
        starter, hold = claim.starter, claim.hold
        info = await self.runs.get(starter, run_id)
        live = LiveRun(ctx=starter, run_id=run_id, session_id=info.session_id, store=self.runs, written=info.events)
        self._live[run_id] = live
        await live.emit("resumed", _resumed(claim))
        if claim.confirmation_status in ("approved", "used"):  # used: the gate refuses it, the model is told
            carry = _Carry(hold, claim.confirmation_id)
            execution = starter.for_ai_execution(run_id)
            live.task = asyncio.create_task(self._resumed_drive(starter, execution, live, carry))
            result: TurnResult = await asyncio.shield(live.task)
            return result
        denied = claim.confirmation_status == "denied"
        code = "confirmation_denied" if denied else "confirmation_expired"
        reason = (
            "A human denied the confirmation this run was waiting for."
            if denied
            else "The confirmation this run was waiting for expired before anyone approved it."
        )
        result = TurnResult(run_id, info.session_id, RunStatus.FAILED, None, hold.steps, hold.usage, None, code, reason)
        try:
            await self._finish(starter, live, result)
        finally:
            live.close()
            self._live.pop(run_id, None)
        return result

    async def _resumed_drive(
        self, ctx: TenantContext, execution: TenantContext, live: LiveRun, carry: _Carry
    ) -> TurnResult:
        try:
            view = await self._policies.view(ctx)  # today's policy, not the one the run started under
        except TenantgateError as exc:  # fail closed, and say so on the run
            hold = carry.hold
            result = TurnResult(live.run_id, live.session_id, RunStatus.FAILED, None, hold.steps, hold.usage,
                                None, exc.code, exc.message)  # fmt: skip
            try:
                await self._finish(ctx, live, result)
            finally:
                live.close()
                self._live.pop(live.run_id, None)
            return result
        return await self._drive(ctx, execution, view, live, carry.hold.conversation, carry)

    # --- the message tool's outbox -------------------------------------------------------

    async def deliver(
        self, ctx: TenantContext, run_id: uuid.UUID | None, content: str, *, channel: str | None, chat_id: str | None
    ) -> MessageInfo:
        """Send ``content`` on the run's own session channel: an outbound message row and a run event."""
        live = self._live.get(run_id) if run_id is not None else None
        if live is None or live.ctx.tenant_id != ctx.tenant_id:
            raise InvalidInput("The message tool sends on an agent session's channel; it runs only inside a run.")
        if channel not in (None, HTTP_CHANNEL):
            raise InvalidInput(f"This session's channel is {HTTP_CHANNEL!r}; it cannot send on {channel!r}.")
        if chat_id not in (None, str(live.session_id)):
            raise InvalidInput("chat_id names another conversation; the message tool only answers in its own.")
        message = await self.sessions.add(
            ctx, live.session_id, role="assistant", content=content, run_id=run_id, kind="outbound"
        )
        await live.emit("message", {"message_id": str(message.id), "channel": HTTP_CHANNEL, "content": content})
        return message

    # --- the loop --------------------------------------------------------------------------

    async def _drive(
        self,
        ctx: TenantContext,
        execution: TenantContext,
        view: TenantView,
        live: LiveRun,
        conversation: Conversation,
        carry: _Carry | None = None,
    ) -> TurnResult:
        with span("tenantgate.turn", execution) as current:
            result = await self._drive_traced(ctx, execution, view, live, conversation, carry)
            if current is not None:
                current.set_attribute("tenantgate.run_status", result.status.value)
            return result

    async def _drive_traced(
        self,
        ctx: TenantContext,
        execution: TenantContext,
        view: TenantView,
        live: LiveRun,
        conversation: Conversation,
        carry: _Carry | None,
    ) -> TurnResult:
        state = _State(keep_raw=view.compliance.keep_raw_content, visible=view.visible)
        spent = 0.0
        if carry is not None:  # a resumed run: its limits count what it used before it waited
            state.steps, state.usage, spent = carry.hold.steps, carry.hold.usage, carry.hold.elapsed_s
        began = time.monotonic()
        planner: Planner | None = None
        status, code, reason, confirmation = RunStatus.COMPLETED, None, None, None
        hold: tuple[Hold, datetime] | None = None
        reply: str | None = None
        try:
            async with asyncio.timeout(max(0.0, self._limits.time_limit_s - spent)):
                await self._check_not_paused(execution)
                planner = await self._planners.open(execution, view, run_id=live.run_id)
                reply = await self._loop(execution, view, planner, live, conversation, state, carry)
        except _Ended as ended:
            status, code, reason, confirmation = ended.status, ended.code, ended.reason, ended.confirmation_id
            if status is RunStatus.AWAITING_CONFIRMATION and ended.expires_at is not None:
                done, pending = ended.calls
                elapsed = spent + time.monotonic() - began
                hold = (Hold(conversation, done, pending, state.steps, state.usage, elapsed), ended.expires_at)
        except TimeoutError:
            status, code = RunStatus.FAILED, "time_limit"
            reason = f"The run did not finish within {self._limits.time_limit_s:g} s."
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # we own this task: record the outcome, then end normally
            status, code, reason = RunStatus.CANCELLED, "cancelled", "The run was cancelled."
        except TenantgateError as exc:
            status, code, reason = RunStatus.FAILED, exc.code, exc.message
        except Exception as exc:  # noqa: BLE001 - a bug fails this run, recorded; it does not vanish
            _log.exception("run.crashed", run_id=str(live.run_id), error_type=type(exc).__name__)
            status, code, reason = RunStatus.FAILED, "internal_error", f"The run failed ({type(exc).__name__})."
        finally:
            if planner is not None:
                await planner.aclose()
        if status is RunStatus.AWAITING_CONFIRMATION:
            reply = reason
        result = TurnResult(
            live.run_id, live.session_id, status, reply, state.steps, state.usage, confirmation, code, reason
        )
        try:
            await self._finish(ctx, live, result, hold)
        finally:
            live.close()
            self._live.pop(live.run_id, None)
        return result

    async def _finish(
        self, ctx: TenantContext, live: LiveRun, result: TurnResult, hold: tuple[Hold, datetime] | None = None
    ) -> None:
        """The ``finished`` event, the run's outcome (and hold), ``run.finished`` and the reply: one transaction."""

        async def record(conn: AsyncConnection) -> None:
            if result.reply:
                await self.sessions.add_in(conn, ctx, live.session_id, role="assistant",
                                           content=result.reply[:MAX_MESSAGE], run_id=live.run_id)  # fmt: skip
            if hold is not None and result.confirmation_id is not None:
                await self.holds.save(conn, ctx, live.run_id, confirmation_id=result.confirmation_id,
                                      expires_at=hold[1], hold=hold[0])  # fmt: skip
            await self.runs.finish(conn, ctx, live.run_id, status=result.status, error_code=result.error_code,
                                   reason=result.reason, steps=result.steps, usage=result.usage,
                                   confirmation_id=result.confirmation_id)  # fmt: skip

        await live.emit_many([("finished", result.as_json(), None)], also=record)

    async def _loop(
        self,
        ctx: TenantContext,
        view: TenantView,
        planner: Planner,
        live: LiveRun,
        conversation: Conversation,
        state: _State,
        carry: _Carry | None = None,
    ) -> str:
        # Channel-only tools (the channel's own reply) are never offered: the gate refuses them from a planner.
        found = (self._registry.get(n) for n in sorted(view.visible))
        tools = [t.spec for t in found if t is not None and not t.spec.channel_only]
        if carry is not None:  # resumed: the held call runs with its approval, then the rest of its plan
            hold = carry.hold
            await self._calls(ctx, live, conversation, hold.pending, state, hold.done, carry.confirmation_id)
        while True:
            if live.cancel_requested:  # read back with every event write, so another process's cancel counts
                raise _Ended(RunStatus.CANCELLED, "cancelled", "The run was cancelled.")
            if state.steps >= self._limits.step_limit:
                raise _Ended(
                    RunStatus.FAILED,
                    "step_limit",
                    f"The run stopped after {self._limits.step_limit} planner steps without a reply.",
                )
            await self._check_not_paused(ctx)  # a pause reaches a running run before its next planner call
            plan = await self._planned(ctx, view, planner, conversation, tools)
            state.steps += 1
            state.usage += plan.usage
            stepped: dict[str, Any] = {
                "step": state.steps,
                "planner": planner.name,
                "model": planner.model,
                "stop_reason": plan.stop_reason,
                "calls": [{"id": _short(c.id), "tool": _short(c.tool)} for c in plan.calls],
                "usage": {"input_tokens": plan.usage.input_tokens, "output_tokens": plan.usage.output_tokens},
            }
            live.stage("planner", stepped)  # written with the first tool call, or with the reply and the outcome
            if not plan.calls:
                reply = plan.text or ""
                live.stage("reply", {"text": reply})
                return reply
            conversation.turns.append(AssistantTurn(plan.text, plan.calls))
            await self._calls(ctx, live, conversation, plan.calls, state)

    async def _calls(
        self,
        ctx: TenantContext,
        live: LiveRun,
        conversation: Conversation,
        calls: tuple[PlannedCall, ...],
        state: _State,
        done: tuple[ToolResultItem, ...] = (),
        confirmation_id: uuid.UUID | None = None,
    ) -> None:
        """Run a plan's calls in order (the first with ``confirmation_id``); their results join the conversation."""
        results = list(done)
        for n, call in enumerate(calls):
            try:
                results.append(await self._call(ctx, live, call, state, confirmation_id if n == 0 else None))
            except _Ended as ended:
                ended.calls = (tuple(results), calls[n:])  # where a resumed run picks up
                raise
        await live.flush()  # every result is on record before the planner sees it
        conversation.turns.append(ToolResults(tuple(results)))

    async def _check_not_paused(self, ctx: TenantContext) -> None:
        """End the run (``kill_switch``) while AI is paused for this tenant or the whole platform.

        Read from the policy cache, current within a second in every process; a cache that
        cannot be sure raises ``policy_unavailable``, which ends the run too (fail closed).
        """
        view = await self._policies.view(ctx)
        if view.switches.ai or view.switches.all:
            raise _Ended(RunStatus.FAILED, "kill_switch", "A kill switch stops AI execution for this tenant.")
        platform = await self._policies.platform()
        if platform.ai or platform.all:
            raise _Ended(RunStatus.FAILED, "kill_switch", "A platform kill switch stops AI execution for every tenant.")

    async def _planned(
        self, ctx: TenantContext, view: TenantView, planner: Planner, conversation: Conversation, tools: list[ToolSpec]
    ) -> Plan:
        """One provider call inside the tenant's token budget: reserve the most it can use, settle what it used.

        Stops the run (``quota_exceeded``) before anything is sent when the budget cannot hold the
        call's maximum; a budget store that cannot be reached stops it too (fail closed).
        """
        if self._quotas is None or planner.vendor is None:  # no provider: no tokens spent
            return await planner.plan(conversation, tools)
        most_out = self._planners.choice(view).max_tokens
        try:
            reservation: TokenReservation = await self._quotas.reserve_tokens(
                ctx,
                input_tokens=_input_estimate(conversation),
                output_tokens=most_out,
                provider=planner.vendor,
                model=planner.model,
            )
        except QuotaExceeded as exc:
            raise _Ended(RunStatus.FAILED, exc.code, f"Token budget: {exc.message}") from exc
        used = (0, 0)  # a provider call that failed is released, not charged
        try:
            plan = await planner.plan(conversation, tools)
            used = (plan.usage.input_tokens, plan.usage.output_tokens)
            return plan
        finally:
            await self._quotas.settle_tokens(reservation, input_tokens=used[0], output_tokens=used[1])

    async def _call(
        self,
        ctx: TenantContext,
        live: LiveRun,
        call: PlannedCall,
        state: _State,
        confirmation_id: uuid.UUID | None = None,
    ) -> ToolResultItem:
        """One proposed call: read, schema-checked, decided, run; answered to the model as a data block."""
        call_id = uuid.uuid4()
        tool = _short(call.tool)
        event: dict[str, Any] = {"call_id": str(call_id), "planner_call_id": _short(call.id), "tool": tool}
        if call.arguments is not None:
            event["args_digest"] = args_digest(call.arguments)
        await live.emit("tool_call", event)

        def answer(outcome: str, content: Any, *, error: bool = True) -> ToolResultItem:
            return ToolResultItem(
                call.id, data_block(tool=tool, call_id=str(call_id), outcome=outcome, content=content), is_error=error
            )

        if call.arguments is None:
            problem = call.error or "the call could not be read"
            await live.emit("tool_result", {"call_id": str(call_id), "outcome": "malformed", "error": problem})
            return answer("malformed", {"error": f"Malformed tool call: {problem}. Send arguments as a JSON object."})
        registered = self._registry.get(call.tool) if call.tool in state.visible else None
        if registered is not None:
            errors = _schema_errors(registered.spec, call.arguments)
            if errors:
                await live.emit(
                    "tool_result", {"call_id": str(call_id), "outcome": "invalid_arguments", "details": errors}
                )
                return answer(
                    "invalid_arguments",
                    {"error": "The arguments do not match the tool's schema; nothing was run.", "details": errors},
                )

        outcome = await self._boundary.call(
            ctx,
            ProposedCall(tool=call.tool, arguments=call.arguments),
            run_id=live.run_id,
            call_id=call_id,
            confirmation_id=confirmation_id,
        )
        decision = outcome.decision
        decided: dict[str, Any] = {"call_id": str(call_id), **decision.summary()}
        if outcome.confirmation is not None:
            decided["confirmation_id"] = str(outcome.confirmation.id)
        if decision.verdict is not Verdict.ALLOW:
            await live.emit("decision", decided)
        if decision.verdict is Verdict.CONFIRM:
            assert outcome.confirmation is not None
            raise _Ended(
                RunStatus.AWAITING_CONFIRMATION,
                "confirmation_required",
                f"{decision.tool} needs a human's approval before it can run: confirmation "
                f"{outcome.confirmation.id}. Once a human approves it, this run continues.",
                outcome.confirmation.id,
                outcome.confirmation.expires_at,
            )
        if decision.verdict is Verdict.DENY:
            return answer("denied", {"code": decision.code.value, "reason": decision.reason})
        result = outcome.result
        assert result is not None
        content = result.output if result.outcome is Outcome.SUCCEEDED else {"error": result.error}
        text = json.dumps(content, ensure_ascii=False, sort_keys=True)
        # Staged: written with the next call's tool_call event, or flushed before the planner's next step.
        live.stage("decision", decided)
        live.stage(
            "tool_result",
            {
                "call_id": str(call_id),
                "tool": result.tool,
                "outcome": result.outcome.value,
                "error": result.error,
                "duration_ms": round(result.duration_ms, 2),
                "content_bytes": len(text.encode("utf-8")),
                "content_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            },
            text if state.keep_raw else None,
        )
        return answer(result.outcome.value, content, error=result.outcome is not Outcome.SUCCEEDED)


def _resumed(claim: Claim) -> dict[str, Any]:
    data = {"confirmation_id": str(claim.confirmation_id), "confirmation": claim.confirmation_status}
    if claim.decided_by is not None:
        data["decided_by"] = str(claim.decided_by)
    return data


@dataclass(slots=True)
class _State:
    keep_raw: bool  # the compliance mode may forbid keeping raw tool content
    visible: frozenset[str]  # the tenant's installed tools: only their schemas are checked (and explained) here
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
