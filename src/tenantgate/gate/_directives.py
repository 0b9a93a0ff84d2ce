"""Side effects as directives: record, then run (here or on the worker), then report.

The boundary hands every allowed call of a ``write``, ``external`` or ``destructive`` tool
to :meth:`DirectiveRunner.submit`: the directive is recorded under its idempotency key
before anything happens, and a second submission with the same key gets the first one's
outcome. Where it runs depends on the process:

- ``inline`` (the default, and the test suite): the submitting process claims and runs it
  at once, one attempt;
- ``queue`` (``TENANTGATE_DIRECTIVES=queue``): it is enqueued on the PostgreSQL job queue and
  ``tenantgate worker`` runs it, with retries and backoff; the caller waits up to the tool's
  time limit and otherwise gets ``pending`` with the directive id.

Either way the effect runs through the same :class:`~tenantgate.tools.Executor`, as the
principal that requested it, under the tenant's row-level security.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.directives import Directive, DirectiveStatus, DirectiveStore
from tenantgate.errors import TenantgateError
from tenantgate.gate._gate import PolicySource
from tenantgate.redact import Redactor
from tenantgate.tools import Executor, Outcome, ToolRegistry, ToolResult, ToolSpec

__all__ = ["DirectiveRetry", "DirectiveRunner", "Enqueue"]

Enqueue = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
_LEASE_MARGIN_S = 5.0  # beyond the tool's own time limit: the executor stops it before the lease ends
_POLL_S = 0.05


class DirectiveRetry(TenantgateError):
    """An attempt failed and attempts are left: the queue runs the directive again after a backoff."""

    code = "directive_retry"


class DirectiveRunner:
    """Records directives, dispatches them (inline or to the queue) and runs them when claimed."""

    def __init__(
        self,
        *,
        store: DirectiveStore,
        executor: Executor,
        registry: ToolRegistry,
        mode: DeploymentMode,
        enqueue: Enqueue | None = None,
        max_attempts: int = 5,
        redactor: Redactor | None = None,
        switches: PolicySource | None = None,
    ) -> None:
        self.store = store
        # Kill switches are read again before every attempt: a directive the gate allowed
        # before an incident does not run (or retry) while a switch covers it.
        self._switches = switches
        self._redactor = redactor if redactor is not None else Redactor()
        self._executor = executor
        self._registry = registry
        self._mode = mode
        self._enqueue = enqueue
        # Inline, a failed attempt is the caller's answer: no one would run a retry later.
        self._max_attempts = max_attempts if enqueue is not None else 1

    @property
    def queued(self) -> bool:
        return self._enqueue is not None

    async def submit(
        self,
        ctx: TenantContext,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        args_digest: str,
        call_id: uuid.UUID,
        run_id: uuid.UUID | None,
        idempotency_key: str | None = None,
    ) -> ToolResult:
        """Record the directive (or find it by key), get it run, and wait for it within the tool's limit."""
        started = time.perf_counter()
        if self._enqueue is not None:
            # A queued directive runs from its stored row: a secret in its arguments would have to
            # be stored. Refused; the caller passes a credential reference instead.
            self._redactor.reject_secrets(dict(arguments), what="directive arguments")
        # The stored copy never holds a secret-shaped value; inline, the call runs with the real ones.
        stored = self._redactor.redact(dict(arguments))
        directive, created = await self.store.record(
            ctx, tool=tool, arguments=stored, args_digest=args_digest,
            idempotency_key=idempotency_key or str(call_id), call_id=call_id, run_id=run_id,
            max_attempts=self._max_attempts,
        )  # fmt: skip
        spec = self._registry.get(tool)
        timeout_s = spec.spec.timeout_s if spec is not None else 30.0
        if created and self._enqueue is None:
            result = await self._attempt(ctx, directive, arguments)
            if result is not None:
                return result
        elif self._enqueue is not None and (created or directive.status is DirectiveStatus.REQUESTED):
            # New; or recorded by a request whose enqueue was refused (the database went down in
            # between) and sent again under its key. A job still waiting holds the queueing lock,
            # and the directive's claim fences a second one: never a second effect.
            await self._enqueue(ctx.tenant_id, directive.id)
        directive = await self._wait(ctx, directive, timeout_s + (_LEASE_MARGIN_S if not created else 0.0))
        return _result(directive, call_id, (time.perf_counter() - started) * 1000)

    async def execute(self, tenant_id: uuid.UUID, directive_id: uuid.UUID) -> Directive:
        """Run one directive for the worker: claim it, run it as its requester, record the outcome.

        Raises :class:`DirectiveRetry` when the attempt failed and attempts are left.
        """
        lookup = system_context(tenant_id, mode=self._mode, request_id=f"directive:{directive_id}")
        directive = await self.store.get(lookup, directive_id)
        for _ in range(3):
            if directive.status.final:
                return directive
            result = await self._attempt(directive.requester(self._mode), directive)
            directive = await self.store.get(lookup, directive_id)
            if result is not None:
                if directive.status is DirectiveStatus.REQUESTED:
                    raise DirectiveRetry(
                        f"directive {directive_id} attempt {directive.attempts} failed: {result.error}"
                    )
                return directive
            if directive.status is DirectiveStatus.RUNNING and directive.lease_until is not None:
                # Another holder's lease is live (a worker that may have died): wait it out once.
                await asyncio.sleep(max(0.0, (directive.lease_until - datetime.now(UTC)).total_seconds()) + 0.1)
        return directive

    async def _attempt(
        self, ctx: TenantContext, directive: Directive, arguments: Mapping[str, Any] | None = None
    ) -> ToolResult | None:
        spec = self._registry.get(directive.tool)
        timeout_s = spec.spec.timeout_s if spec is not None else 30.0
        claimed = await self.store.claim(ctx, directive.id, lease_s=timeout_s + _LEASE_MARGIN_S)
        if claimed is None:
            return None
        blocked = await self._switched_off(ctx, spec.spec if spec is not None else None)
        if blocked is not None:
            await self.store.finish(ctx, claimed, succeeded=False, error=blocked)
            return ToolResult(claimed.tool, claimed.call_id, Outcome.FAILED, None, blocked, 0.0, claimed.id)
        result = await self._executor.run(
            ctx, claimed.tool, arguments if arguments is not None else claimed.arguments, call_id=claimed.call_id,
            run_id=claimed.run_id,
            directive_id=claimed.id,
        )  # fmt: skip
        succeeded = result.outcome is Outcome.SUCCEEDED
        await self.store.finish(ctx, claimed, succeeded=succeeded, result=result.output, error=result.error)
        return result

    async def _switched_off(self, ctx: TenantContext, spec: ToolSpec | None) -> str | None:
        """Why a kill switch stops this attempt now, or None; policy state that cannot be trusted stops it too."""
        if self._switches is None or spec is None:
            return None
        try:
            levels = (
                ("platform", await self._switches.platform()),
                ("tenant", (await self._switches.view(ctx)).switches),
            )
        except TenantgateError as exc:  # fail closed: the attempt fails (and is retried if attempts are left)
            return f"{exc.code}: {exc.message}"
        for level, switches in levels:
            blocked = switches.blocks(ctx, spec)
            if blocked is not None:
                return f"kill_switch: A {level} kill switch is on for {blocked}."
        return None

    async def _wait(self, ctx: TenantContext, directive: Directive, timeout_s: float) -> Directive:
        deadline = time.monotonic() + timeout_s
        while not directive.status.final and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
            directive = await self.store.get(ctx, directive.id)
        return directive


def _result(directive: Directive, call_id: uuid.UUID, elapsed_ms: float) -> ToolResult:
    if directive.status is DirectiveStatus.SUCCEEDED:
        return ToolResult(directive.tool, call_id, Outcome.SUCCEEDED, directive.result, None, elapsed_ms, directive.id)
    if directive.status in {DirectiveStatus.FAILED, DirectiveStatus.CANCELED}:
        error = directive.last_error or f"the directive was {directive.status.value}"
        return ToolResult(directive.tool, call_id, Outcome.FAILED, None, error, elapsed_ms, directive.id)
    pending = {"directive_id": str(directive.id), "status": directive.status.value}
    return ToolResult(directive.tool, call_id, Outcome.PENDING, pending, None, elapsed_ms, directive.id)
