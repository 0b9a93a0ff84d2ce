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
from tenantgate.auth import require_manager
from tenantgate.context import TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from tenantgate.schedules._cron import check_message, check_name, lock_tenant
from tenantgate.schedules._limits import ScheduleLimits, TenantCap
from tenantgate.schedules._schedule import MAX_EVERY_SECONDS
from tenantgate.schedules._versions import DefinitionVersion
from tenantgate.store import Database, restore_target, tables

__all__ = ["HeartbeatStore", "HeartbeatTask", "HeartbeatTaskVersion"]

_h, _hv = tables.heartbeat_tasks, tables.heartbeat_task_versions


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
    version: int = 1
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> HeartbeatTask:
        return cls(row.id, row.name, row.prompt, row.every_seconds, row.enabled, row.next_due_at,
                   row.created_at, row.updated_at, row.version, row.deleted_at)  # fmt: skip

    def definition(self) -> dict[str, Any]:
        """What a version row keeps: everything that defines the task."""
        return {"name": self.name, "prompt": self.prompt, "every_seconds": self.every_seconds, "enabled": self.enabled}


HeartbeatTaskVersion = DefinitionVersion


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
                        version=1,
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
            values: dict[str, Any] = {"updated_at": sa.func.now(), "version": _h.c.version + 1}
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
                    .values(deleted_at=sa.func.now(), updated_at=sa.func.now(), next_due_at=None,
                            version=_h.c.version + 1)
                    .returning(*_h.c)
                )
            ).one()  # fmt: skip
            task = HeartbeatTask.of(row)
            await self._audited(conn, ctx, task, "removed")
        return task

    async def tasks(self, ctx: TenantContext, *, include_deleted: bool = False) -> list[HeartbeatTask]:
        """The tenant's tasks by name; removed ones too with ``include_deleted`` (owner/admin)."""
        if include_deleted:
            require_manager(ctx)
        live = sa.true() if include_deleted else _h.c.deleted_at.is_(None)
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_h).where(_h.c.tenant_id == ctx.tenant_id, live).order_by(_h.c.name, _h.c.created_at)
                )
            ).all()
        return [HeartbeatTask.of(r) for r in rows]

    async def versions(self, ctx: TenantContext, task_id: uuid.UUID) -> list[HeartbeatTaskVersion]:
        """Every version of a task's definition (removed tasks included), oldest first."""
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_hv)
                    .where(_hv.c.tenant_id == ctx.tenant_id, _hv.c.task_id == task_id)
                    .order_by(_hv.c.version)
                )
            ).all()
        if not rows:
            raise NotFound(f"No heartbeat task {task_id} in this tenant.")
        return [DefinitionVersion.of(r) for r in rows]

    async def restore(self, ctx: TenantContext, task_id: uuid.UUID, *, version: int | None = None) -> HeartbeatTask:
        """Bring back a definition (default: the latest before removal) as a new version, due from now.

        A removed task comes back only if its name is free and the tenant has room for it
        (the same cap as adding one); the interval limits of a new task apply.
        """
        now = self._clock()
        cap = await self._tenant_cap(ctx) if self._tenant_cap is not None else self.limits.max_heartbeat_tasks
        async with self._db.tenant(ctx) as conn:
            await lock_tenant(conn, ctx, "heartbeat")
            current = (
                await conn.execute(
                    sa.select(_h).where(_h.c.tenant_id == ctx.tenant_id, _h.c.id == task_id).with_for_update()
                )
            ).one_or_none()
            if current is None:
                raise NotFound(f"No heartbeat task {task_id} in this tenant.")
            history = (
                await conn.execute(
                    sa.select(_hv.c.version, _hv.c.change, _hv.c.definition)
                    .where(_hv.c.tenant_id == ctx.tenant_id, _hv.c.task_id == task_id)
                )
            ).all()  # fmt: skip
            was_deleted = current.deleted_at is not None
            target = restore_target([(r.version, r.change) for r in history], requested=version,
                                    deleted=was_deleted, deletion="removed",
                                    what=f"heartbeat task {task_id}")  # fmt: skip
            definition = next(dict(r.definition) for r in history if r.version == target)
            every = self._check_every(int(definition["every_seconds"]))
            others = (
                await conn.execute(
                    sa.select(_h.c.name).where(_h.c.tenant_id == ctx.tenant_id, _h.c.deleted_at.is_(None),
                                               _h.c.id != task_id)
                )
            ).scalars().all()  # fmt: skip
            if definition["name"] in others:
                raise Conflict(
                    f"A live heartbeat task is named {definition['name']!r} now: remove that one first, then "
                    "restore this one. Nothing was restored."
                )
            if was_deleted and len(others) >= cap:
                raise QuotaExceeded(
                    f"This tenant has {len(others)} heartbeat tasks, the most allowed here: remove one before "
                    "restoring.",
                    limit=cap,
                )
            enabled = bool(definition.get("enabled", True))
            row = (
                await conn.execute(
                    sa.update(_h)
                    .where(_h.c.tenant_id == ctx.tenant_id, _h.c.id == task_id)
                    .values(name=definition["name"], prompt=definition["prompt"], every_seconds=every,
                            enabled=enabled, next_due_at=now + timedelta(seconds=every) if enabled else None,
                            deleted_at=None, updated_at=sa.func.now(), version=_h.c.version + 1)
                    .returning(*_h.c)
                )
            ).one()  # fmt: skip
            task = HeartbeatTask.of(row)
            await self._audited(conn, ctx, task, "restored", from_version=target)
        return task

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

    async def _audited(
        self, conn: AsyncConnection, ctx: TenantContext, task: HeartbeatTask, change: str,
        *, from_version: int | None = None,
    ) -> None:  # fmt: skip
        """Write the task's version row and its audit event, in the caller's transaction."""
        await conn.execute(
            sa.insert(_hv).values(tenant_id=ctx.tenant_id, task_id=task.id, version=task.version,
                                  definition=task.definition(), change=change, changed_by=ctx.principal_id)
        )  # fmt: skip
        payload = {"task_id": str(task.id), "name": task.name, "every_seconds": task.every_seconds,
                   "enabled": task.enabled, "prompt_chars": len(task.prompt), "version": task.version}  # fmt: skip
        if from_version is not None:
            payload |= {"from_version": from_version, "to_version": task.version}
        await self._audit.append(conn, ctx, AuditEvent(action=f"heartbeat.{change}", payload=payload))
