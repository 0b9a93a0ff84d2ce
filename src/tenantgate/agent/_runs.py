"""Runs (one agent turn each) and their events, in order: tenant-scoped rows under RLS.

Events are written as they happen, each in its own short transaction, so a run that dies
half-way still shows every step it took. Raw tool content sits in the event's ``content``
column, referenced from ``data`` by digest and size; it is never logged.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.agent._planner import Usage
from tenantgate.agent._sessions import may_see
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import Role, TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.redact import Redactor
from tenantgate.store import Database, tables

__all__ = ["NewEvent", "RunEvent", "RunInfo", "RunStatus", "RunStore"]

_MAX_REASON = 2000

NewEvent = tuple[int, str, dict[str, Any], str | None]  # (seq, kind, data, content)


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    FAILED = "failed"
    CANCELLED = "cancelled"


_AUDIT_DECISION = {RunStatus.COMPLETED: "succeeded", RunStatus.FAILED: "failed", RunStatus.CANCELLED: "failed"}


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One step of a run: ``kind`` (planner, tool_call, decision, tool_result, message, reply, finished, ...)."""

    run_id: uuid.UUID
    seq: int
    kind: str
    data: dict[str, Any]
    occurred_at: datetime
    content: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: uuid.UUID
    session_id: uuid.UUID
    started_by: uuid.UUID
    started_by_kind: str
    execution_id: uuid.UUID
    planner: str
    model: str | None
    status: RunStatus
    error_code: str | None
    reason: str | None
    steps: int
    input_tokens: int
    output_tokens: int
    confirmation_id: uuid.UUID | None
    started_at: datetime
    finished_at: datetime | None
    events: tuple[RunEvent, ...] = ()


def _run(row: Any, events: tuple[RunEvent, ...] = ()) -> RunInfo:
    return RunInfo(
        row.id,
        row.session_id,
        row.started_by,
        row.started_by_kind,
        row.execution_id,
        row.planner,
        row.model,
        RunStatus(row.status),
        row.error_code,
        row.reason,
        row.steps,
        row.input_tokens,
        row.output_tokens,
        row.confirmation_id,
        row.started_at,
        row.finished_at,
        events,
    )


def _event(row: Any) -> RunEvent:
    return RunEvent(row.run_id, row.seq, row.kind, dict(row.data), row.occurred_at, row.content)


class RunStore:
    """Runs and their events. Every event passes the redaction pipeline before it is stored or streamed."""

    def __init__(self, *, db: Database, audit: AuditLog, redactor: Redactor) -> None:
        self._db = db
        self._audit = audit
        self._redactor = redactor

    async def start(
        self,
        conn: AsyncConnection,
        ctx: TenantContext,
        *,
        run_id: uuid.UUID,
        session_id: uuid.UUID,
        execution: TenantContext,
        planner: str,
        model: str | None,
    ) -> None:
        """Insert the run row in the caller's transaction (then, last in it, :meth:`audit_started`)."""
        await conn.execute(
            tables.runs.insert().values(
                tenant_id=ctx.tenant_id,
                id=run_id,
                session_id=session_id,
                started_by=ctx.principal_id,
                started_by_kind=ctx.kind.value,
                execution_id=execution.principal_id,
                planner=planner,
                model=model,
            )
        )

    async def audit_started(
        self,
        conn: AsyncConnection,
        ctx: TenantContext,
        *,
        run_id: uuid.UUID,
        session_id: uuid.UUID,
        planner: str,
        model: str | None,
    ) -> None:
        """Audit ``run.started``. Last in its transaction: the tenant's chain head stays locked until commit."""
        await self._audit.append(
            conn,
            ctx,
            AuditEvent(
                action="run.started",
                payload={"run_id": str(run_id), "session_id": str(session_id), "planner": planner, "model": model},
            ),
        )

    async def append(
        self,
        ctx: TenantContext,
        run_id: uuid.UUID,
        events: Sequence[NewEvent],
        *,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> tuple[list[RunEvent], bool]:
        """Write events (and ``also``'s work) in one transaction; the events, and whether cancellation was asked."""
        async with self._db.tenant(ctx) as conn:
            written, cancel = await self._insert(conn, ctx, run_id, events)
            if also is not None:
                await also(conn)  # last: it may audit, which locks the tenant's chain head until commit
        return written, cancel

    async def insert_events(
        self, conn: AsyncConnection, ctx: TenantContext, run_id: uuid.UUID, events: Sequence[NewEvent]
    ) -> list[RunEvent]:
        """Write events in the caller's transaction."""
        return (await self._insert(conn, ctx, run_id, events))[0]

    async def _insert(
        self, conn: AsyncConnection, ctx: TenantContext, run_id: uuid.UUID, events: Sequence[NewEvent]
    ) -> tuple[list[RunEvent], bool]:
        # The run's cancellation flag comes back with the insert: no extra round trip per step.
        t, r = tables.run_events, tables.runs
        redact, redact_text = self._redactor.redact, self._redactor.redact_text
        cancel = sa.select(r.c.cancel_requested).where(r.c.tenant_id == ctx.tenant_id, r.c.id == run_id)
        rows = (
            await conn.execute(
                t.insert()
                .values([{"tenant_id": ctx.tenant_id, "run_id": run_id, "seq": seq, "kind": kind,
                          "data": redact(data), "content": redact_text(content) if content is not None else None}
                         for seq, kind, data, content in events])
                .returning(*t.c, cancel.scalar_subquery().label("cancel_requested"))
            )
        ).all()  # fmt: skip
        return sorted((_event(row) for row in rows), key=lambda e: e.seq), any(row.cancel_requested for row in rows)

    async def finish(
        self,
        conn: AsyncConnection,
        ctx: TenantContext,
        run_id: uuid.UUID,
        *,
        status: RunStatus,
        error_code: str | None,
        reason: str | None,
        steps: int,
        usage: Usage,
        confirmation_id: uuid.UUID | None,
    ) -> None:
        """Record the outcome and audit ``run.finished`` in the caller's transaction (last in it: see audit_started)."""
        t = tables.runs
        await conn.execute(
            t.update()
            .where(t.c.tenant_id == ctx.tenant_id, t.c.id == run_id)
            .values(
                status=status.value,
                error_code=error_code,
                reason=reason[:_MAX_REASON] if reason else None,
                steps=steps,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                confirmation_id=confirmation_id,
                finished_at=sa.func.now(),
            )
        )
        payload: dict[str, Any] = {
            "run_id": str(run_id),
            "status": status.value,
            "steps": steps,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
        }
        if error_code:
            payload["error_code"] = error_code
        if confirmation_id:
            payload["confirmation_id"] = str(confirmation_id)
        await self._audit.append(
            conn,
            ctx,
            AuditEvent(action="run.finished", decision=_AUDIT_DECISION.get(status), code=status.value, payload=payload),
        )

    async def get(self, ctx: TenantContext, run_id: uuid.UUID, *, with_events: bool = True) -> RunInfo:
        """The run and its events in order; NotFound if it is not this tenant's."""
        t, e = tables.runs, tables.run_events
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(sa.select(t).where(t.c.tenant_id == ctx.tenant_id, t.c.id == run_id))
            ).one_or_none()
            if row is None or not may_see(ctx, row.started_by):
                raise NotFound(f"No run {run_id} in this tenant.")
            events: tuple[RunEvent, ...] = ()
            if with_events:
                rows = await conn.execute(
                    sa.select(e).where(e.c.tenant_id == ctx.tenant_id, e.c.run_id == run_id).order_by(e.c.seq)
                )
                events = tuple(_event(r) for r in rows)
        return _run(row, events)

    async def request_cancel(self, ctx: TenantContext, run_id: uuid.UUID) -> RunInfo:
        """Flag a running run for cancellation (the loop stops at its next step); audited."""
        t = tables.runs
        await self.get(ctx, run_id, with_events=False)  # NotFound unless the caller may see it
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    t.update()
                    .where(t.c.tenant_id == ctx.tenant_id, t.c.id == run_id, t.c.status == RunStatus.RUNNING.value)
                    .values(cancel_requested=True)
                    .returning(t.c.id)
                )
            ).one_or_none()
            if row is not None:
                await self._audit.append(
                    conn, ctx, AuditEvent(action="run.cancel_requested", payload={"run_id": str(run_id)})
                )
        return await self.get(ctx, run_id, with_events=False)

    async def list(self, ctx: TenantContext, *, limit: int = 50, status: RunStatus | None = None) -> list[RunInfo]:
        """The tenant's most recent runs, newest first, without events: every run for owners and
        admins, a member's own otherwise (as :meth:`get` decides)."""
        if not 1 <= limit <= 500:
            raise InvalidInput("limit is between 1 and 500.")
        t = tables.runs
        query = sa.select(t).where(t.c.tenant_id == ctx.tenant_id).order_by(t.c.started_at.desc(), t.c.id).limit(limit)
        if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
            query = query.where(t.c.started_by == ctx.root_principal)
        if status is not None:
            query = query.where(t.c.status == status.value)
        async with self._db.tenant(ctx) as conn:
            return [_run(row) for row in await conn.execute(query)]
