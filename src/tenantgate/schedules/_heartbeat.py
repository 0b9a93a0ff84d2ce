"""Tenant heartbeat tasks: a prompt the agent is given every so often, to check on something.

Rows hold what to check (``prompt``), how often (``every_seconds``), whether the task is
enabled and when it is next due; the worker (a later issue) wakes the agent for due
tasks. Adds, changes, pauses and removals are audited in the same transaction; the
count and interval limits come from :class:`ScheduleLimits`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from tenantgate.schedules._cron import check_message, check_name, lock_tenant
from tenantgate.schedules._limits import ScheduleLimits, TenantCap
from tenantgate.schedules._schedule import MAX_EVERY_SECONDS
from tenantgate.store import Database, tables

__all__ = ["HeartbeatStore", "HeartbeatTask"]

_h = tables.heartbeat_tasks


@dataclass(frozen=True, slots=True)
class HeartbeatTask:
    id: uuid.UUID
    name: str
    prompt: str
    every_seconds: int
    enabled: bool
    next_due_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> HeartbeatTask:
        return cls(row.id, row.name, row.prompt, row.every_seconds, row.enabled, row.next_due_at,
                   row.created_at, row.updated_at)  # fmt: skip


def _now() -> datetime:
    return datetime.now(UTC)


class HeartbeatStore:
    """A tenant's heartbeat tasks."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        limits: ScheduleLimits,
        clock: Callable[[], datetime] = _now,
        tenant_cap: TenantCap | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self.limits = limits
        # The tenant's own cap (its quota plan), when the installation gives one; else the settings' cap.
        self._tenant_cap = tenant_cap
        self._clock = clock

    def _check_every(self, every_seconds: int) -> int:
        minimum = self.limits.min_heartbeat_interval_seconds
        if not isinstance(every_seconds, int) or not minimum <= every_seconds <= MAX_EVERY_SECONDS:
            raise InvalidInput(
                f"A heartbeat runs every {minimum} to {MAX_EVERY_SECONDS} seconds here, not {every_seconds}.",
                min_interval_seconds=minimum,
            )
        return every_seconds

    async def add(self, ctx: TenantContext, *, name: str, prompt: str, every_seconds: int) -> HeartbeatTask:
        check_name(name, "heartbeat task")
        check_message(prompt, "heartbeat prompt")
        self._check_every(every_seconds)
        due = self._clock() + timedelta(seconds=every_seconds)
        cap = await self._tenant_cap(ctx) if self._tenant_cap is not None else self.limits.max_heartbeat_tasks
        async with self._db.tenant(ctx) as conn:
            await lock_tenant(conn, ctx, "heartbeat")
            live = (
                await conn.execute(
                    sa.select(_h.c.name).where(_h.c.tenant_id == ctx.tenant_id, _h.c.deleted_at.is_(None))
                )
            ).scalars().all()  # fmt: skip
            if name in live:
                raise Conflict(f"A heartbeat task named {name!r} exists already: remove it or pick another name.")
            if len(live) >= cap:
                raise QuotaExceeded(
                    f"This tenant has {len(live)} heartbeat tasks, the most allowed here: remove one first.",
                    limit=cap,
                )
            row = (
                await conn.execute(
                    sa.insert(_h).values(
                        tenant_id=ctx.tenant_id, id=uuid.uuid4(), name=name, prompt=prompt,
                        every_seconds=every_seconds, enabled=True, next_due_at=due, created_by=ctx.principal_id,
                    ).returning(*_h.c)
                )
            ).one()  # fmt: skip
            task = HeartbeatTask.of(row)
            await self._audited(conn, ctx, task, "created")
        return task

    async def update(
        self, ctx: TenantContext, ref: uuid.UUID | str, *, prompt: str | None = None,
        every_seconds: int | None = None, enabled: bool | None = None,
    ) -> HeartbeatTask:  # fmt: skip
        """Change a task; a change of interval or a resume makes it due one interval from now."""
        if prompt is not None:
            check_message(prompt, "heartbeat prompt")
        if every_seconds is not None:
            self._check_every(every_seconds)
        now = self._clock()
        async with self._db.tenant(ctx) as conn:
            current = await self._find(conn, ctx, ref)
            values: dict[str, Any] = {"updated_at": sa.func.now()}
            if prompt is not None:
                values["prompt"] = prompt
            every = every_seconds if every_seconds is not None else current.every_seconds
            if every_seconds is not None:
                values["every_seconds"] = every_seconds
            now_enabled = current.enabled if enabled is None else enabled
            values["enabled"] = now_enabled
            if not now_enabled:
                values["next_due_at"] = None
            elif not current.enabled or every_seconds is not None:
                values["next_due_at"] = now + timedelta(seconds=every)
            row = (
                await conn.execute(
                    sa.update(_h).where(_h.c.tenant_id == ctx.tenant_id, _h.c.id == current.id)
                    .values(**values).returning(*_h.c)
                )
            ).one()  # fmt: skip
            task = HeartbeatTask.of(row)
            if enabled is not None and enabled != current.enabled and prompt is None and every_seconds is None:
                change = "resumed" if enabled else "paused"
            else:
                change = "updated"
            await self._audited(conn, ctx, task, change)
        return task

    async def pause(self, ctx: TenantContext, ref: uuid.UUID | str) -> HeartbeatTask:
        return await self.update(ctx, ref, enabled=False)

    async def resume(self, ctx: TenantContext, ref: uuid.UUID | str) -> HeartbeatTask:
        return await self.update(ctx, ref, enabled=True)

    async def remove(self, ctx: TenantContext, ref: uuid.UUID | str) -> HeartbeatTask:
        async with self._db.tenant(ctx) as conn:
            current = await self._find(conn, ctx, ref)
            row = (
                await conn.execute(
                    sa.update(_h).where(_h.c.tenant_id == ctx.tenant_id, _h.c.id == current.id)
                    .values(deleted_at=sa.func.now(), updated_at=sa.func.now(), next_due_at=None)
                    .returning(*_h.c)
                )
            ).one()  # fmt: skip
            task = HeartbeatTask.of(row)
            await self._audited(conn, ctx, task, "removed")
        return task

    async def tasks(self, ctx: TenantContext) -> list[HeartbeatTask]:
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_h).where(_h.c.tenant_id == ctx.tenant_id, _h.c.deleted_at.is_(None)).order_by(_h.c.name)
                )
            ).all()
        return [HeartbeatTask.of(r) for r in rows]

    async def get(self, ctx: TenantContext, ref: uuid.UUID | str) -> HeartbeatTask:
        async with self._db.tenant(ctx) as conn:
            return await self._find(conn, ctx, ref)

    async def _find(self, conn: AsyncConnection, ctx: TenantContext, ref: uuid.UUID | str) -> HeartbeatTask:
        match = _h.c.id == ref if isinstance(ref, uuid.UUID) else _h.c.name == ref
        row = (
            await conn.execute(sa.select(_h).where(_h.c.tenant_id == ctx.tenant_id, match, _h.c.deleted_at.is_(None)))
        ).one_or_none()
        if row is None:
            raise NotFound(f"No heartbeat task {str(ref)[:100]!r} in this tenant.")
        return HeartbeatTask.of(row)

    async def _audited(self, conn: AsyncConnection, ctx: TenantContext, task: HeartbeatTask, change: str) -> None:
        payload = {"task_id": str(task.id), "name": task.name, "every_seconds": task.every_seconds,
                   "enabled": task.enabled, "prompt_chars": len(task.prompt)}  # fmt: skip
        await self._audit.append(conn, ctx, AuditEvent(action=f"heartbeat.{change}", payload=payload))
