"""Tenant cron jobs as rows: validated definitions, limits, the next run time and every version.

Running due jobs is the worker's job (a later issue); here a definition is checked
(schedule, time zone, message, the tenant's limits), given its ``next_run_at`` and
stored with a ``cron_job_versions`` row and an audit event in one transaction. The
count limit is checked under a per-tenant advisory lock, so two concurrent adds cannot
both take the last slot.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import require_manager
from tenantgate.context import TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from tenantgate.schedules._limits import ScheduleLimits, TenantCap
from tenantgate.schedules._schedule import Schedule, ScheduleKind
from tenantgate.schedules._versions import DefinitionVersion
from tenantgate.store import Database, restore_target, tables

__all__ = ["MAX_MESSAGE_CHARS", "NAME_PATTERN", "CronJob", "CronJobVersion", "CronStore", "check_name"]

MAX_MESSAGE_CHARS = 4000
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
_j, _jv = tables.cron_jobs, tables.cron_job_versions
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"A {what} name is 1 to 100 letters, digits, spaces and _ . : - (starting with a letter "
                           f"or digit), not {str(name)[:40]!r}.")  # fmt: skip
    return name


def check_message(text: str, what: str) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_MESSAGE_CHARS or "\x00" in text:
        raise InvalidInput(f"The {what} must be 1 to {MAX_MESSAGE_CHARS} characters of text.")
    return text


async def lock_tenant(conn: AsyncConnection, ctx: TenantContext, what: str) -> None:
    """Serialize this tenant's writers of ``what`` until the transaction ends (limit checks need it)."""
    await conn.execute(_LOCK, {"key": f"tenantgate.{what}:{ctx.tenant_id}"})


@dataclass(frozen=True, slots=True)
class CronJob:
    id: uuid.UUID
    name: str
    schedule: Schedule
    message: str
    enabled: bool
    next_run_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> CronJob:
        schedule = Schedule(ScheduleKind(row.kind), row.schedule, row.timezone)
        return cls(row.id, row.name, schedule, row.message, row.enabled, row.next_run_at, row.version,
                   row.created_at, row.updated_at, row.deleted_at)  # fmt: skip

    def definition(self) -> dict[str, Any]:
        """What a version row keeps: everything that defines the job."""
        return {"name": self.name, **self.schedule.describe(), "message": self.message, "enabled": self.enabled}


CronJobVersion = DefinitionVersion


def _now() -> datetime:
    return datetime.now(UTC)


class CronStore:
    """A tenant's cron jobs. Definitions only: the worker runs due jobs."""

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

    def check(self, schedule: Schedule, now: datetime) -> datetime:
        """Refuse a schedule that breaks the limits or never runs; return its first run."""
        first = schedule.next_run(now)
        if first is None:
            raise InvalidInput(f"The 'at' time {schedule.spec} is in the past: a one-time job must run later.")
        gap = schedule.shortest_gap(now)
        minimum = self.limits.min_cron_interval_seconds
        if gap is not None and gap < minimum:
            raise InvalidInput(
                f"This schedule runs every {gap:.0f} s; the shortest interval allowed here is {minimum} s.",
                min_interval_seconds=minimum,
            )
        return first

    async def add(
        self, ctx: TenantContext, *, name: str, kind: ScheduleKind | str, schedule: str | int,
        message: str, timezone: str = "UTC",
    ) -> CronJob:  # fmt: skip
        """Validate and store a new job; its name is unique among the tenant's jobs."""
        check_name(name, "cron job")
        check_message(message, "cron job message")
        parsed = Schedule.parse(kind, schedule, timezone)
        now = self._clock()
        first = self.check(parsed, now)
        cap = await self._tenant_cap(ctx) if self._tenant_cap is not None else self.limits.max_cron_jobs
        async with self._db.tenant(ctx) as conn:
            await lock_tenant(conn, ctx, "cron")
            live = (
                await conn.execute(
                    sa.select(_j.c.name).where(_j.c.tenant_id == ctx.tenant_id, _j.c.deleted_at.is_(None))
                )
            ).scalars().all()  # fmt: skip
            if name in live:
                raise Conflict(f"A cron job named {name!r} exists already: remove it first or pick another name.")
            if len(live) >= cap:
                raise QuotaExceeded(
                    f"This tenant has {len(live)} cron jobs, the most allowed here: remove one first.",
                    limit=cap,
                )
            row = (
                await conn.execute(
                    sa.insert(_j).values(
                        tenant_id=ctx.tenant_id, id=uuid.uuid4(), name=name, kind=parsed.kind.value,
                        schedule=parsed.spec, timezone=parsed.timezone, message=message, enabled=True,
                        next_run_at=first, version=1, created_by=ctx.principal_id,
                    ).returning(*_j.c)
                )
            ).one()  # fmt: skip
            job = CronJob.of(row)
            await self._history(conn, ctx, job, "created")
        return job

    async def remove(self, ctx: TenantContext, ref: uuid.UUID | str) -> CronJob:
        """Remove a job by id or name. Its definition history stays."""
        async with self._db.tenant(ctx) as conn:
            await lock_tenant(conn, ctx, "cron")
            current = await self._find(conn, ctx, ref)
            row = (
                await conn.execute(
                    sa.update(_j)
                    .where(_j.c.tenant_id == ctx.tenant_id, _j.c.id == current.id)
                    .values(deleted_at=sa.func.now(), updated_at=sa.func.now(), next_run_at=None,
                            version=_j.c.version + 1)
                    .returning(*_j.c)
                )
            ).one()  # fmt: skip
            job = CronJob.of(row)
            await self._history(conn, ctx, job, "removed")
        return job

    async def jobs(self, ctx: TenantContext, *, include_deleted: bool = False) -> list[CronJob]:
        """The tenant's jobs by name; removed ones too with ``include_deleted`` (owner/admin)."""
        if include_deleted:
            require_manager(ctx)
        live = sa.true() if include_deleted else _j.c.deleted_at.is_(None)
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_j).where(_j.c.tenant_id == ctx.tenant_id, live).order_by(_j.c.name, _j.c.created_at)
                )
            ).all()
        return [CronJob.of(r) for r in rows]

    async def restore(self, ctx: TenantContext, job_id: uuid.UUID, *, version: int | None = None) -> CronJob:
        """Bring back a definition (default: the latest before removal) as a new version, scheduled from now.

        A removed job comes back only if its name is free and the tenant has room for it
        (the same cap as adding one); its next run is computed from now, and the limits
        that apply to a new job apply to the restored schedule.
        """
        now = self._clock()
        cap = await self._tenant_cap(ctx) if self._tenant_cap is not None else self.limits.max_cron_jobs
        async with self._db.tenant(ctx) as conn:
            await lock_tenant(conn, ctx, "cron")
            current = (
                await conn.execute(
                    sa.select(_j).where(_j.c.tenant_id == ctx.tenant_id, _j.c.id == job_id).with_for_update()
                )
            ).one_or_none()
            if current is None:
                raise NotFound(f"No cron job {job_id} in this tenant.")
            history = (
                await conn.execute(
                    sa.select(_jv.c.version, _jv.c.change, _jv.c.definition)
                    .where(_jv.c.tenant_id == ctx.tenant_id, _jv.c.job_id == job_id)
                )
            ).all()  # fmt: skip
            was_deleted = current.deleted_at is not None
            target = restore_target([(r.version, r.change) for r in history], requested=version,
                                    deleted=was_deleted, deletion="removed", what=f"cron job {job_id}")  # fmt: skip
            definition = next(dict(r.definition) for r in history if r.version == target)
            parsed = Schedule.parse(definition["kind"], definition["schedule"], definition["timezone"])
            first = self.check(parsed, now)
            others = (
                await conn.execute(
                    sa.select(_j.c.name).where(_j.c.tenant_id == ctx.tenant_id, _j.c.deleted_at.is_(None),
                                               _j.c.id != job_id)
                )
            ).scalars().all()  # fmt: skip
            if definition["name"] in others:
                raise Conflict(
                    f"A live cron job is named {definition['name']!r} now: remove or rename that one first, then "
                    "restore this one. Nothing was restored."
                )
            if was_deleted and len(others) >= cap:
                raise QuotaExceeded(
                    f"This tenant has {len(others)} cron jobs, the most allowed here: remove one before restoring.",
                    limit=cap,
                )
            enabled = bool(definition.get("enabled", True))
            row = (
                await conn.execute(
                    sa.update(_j)
                    .where(_j.c.tenant_id == ctx.tenant_id, _j.c.id == job_id)
                    .values(name=definition["name"], kind=parsed.kind.value, schedule=parsed.spec,
                            timezone=parsed.timezone, message=definition["message"], enabled=enabled,
                            next_run_at=first if enabled else None, deleted_at=None, updated_at=sa.func.now(),
                            version=_j.c.version + 1)
                    .returning(*_j.c)
                )
            ).one()  # fmt: skip
            job = CronJob.of(row)
            await self._history(conn, ctx, job, "restored", from_version=target)
        return job

    async def get(self, ctx: TenantContext, ref: uuid.UUID | str) -> CronJob:
        async with self._db.tenant(ctx) as conn:
            return await self._find(conn, ctx, ref)

    async def versions(self, ctx: TenantContext, job_id: uuid.UUID) -> list[CronJobVersion]:
        """Every version of a job's definition (removed jobs included), oldest first."""
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_jv)
                    .where(_jv.c.tenant_id == ctx.tenant_id, _jv.c.job_id == job_id)
                    .order_by(_jv.c.version)
                )
            ).all()
        if not rows:
            raise NotFound(f"No cron job {job_id} in this tenant.")
        return [DefinitionVersion.of(r) for r in rows]

    async def _find(self, conn: AsyncConnection, ctx: TenantContext, ref: uuid.UUID | str) -> CronJob:
        match = _j.c.id == ref if isinstance(ref, uuid.UUID) else _j.c.name == ref
        row = (
            await conn.execute(sa.select(_j).where(_j.c.tenant_id == ctx.tenant_id, match, _j.c.deleted_at.is_(None)))
        ).one_or_none()
        if row is None:
            raise NotFound(f"No cron job {str(ref)[:100]!r} in this tenant.")
        return CronJob.of(row)

    async def _history(
        self, conn: AsyncConnection, ctx: TenantContext, job: CronJob, change: str, *, from_version: int | None = None
    ) -> None:
        definition = job.definition()
        await conn.execute(
            sa.insert(_jv).values(tenant_id=ctx.tenant_id, job_id=job.id, version=job.version,
                                  definition=definition, change=change, changed_by=ctx.principal_id)
        )  # fmt: skip
        payload = {"job_id": str(job.id), "version": job.version, **definition, "message_chars": len(job.message)}
        if from_version is not None:
            payload |= {"from_version": from_version, "to_version": job.version}
        del payload["message"]  # the message is the tenant's content; the audit trail records its size
        await self._audit.append(conn, ctx, AuditEvent(action=f"cron.{change}", payload=payload))
