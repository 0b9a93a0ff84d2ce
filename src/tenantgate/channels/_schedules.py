"""Due cron jobs and heartbeat tasks, run by the worker as agent turns.

The scan for due rows is the one cross-tenant read (the admin role, ids only); each job is
then claimed in its tenant's transaction (``FOR UPDATE SKIP LOCKED``, next run written
before the turn starts), so several workers never run one job twice. The turn runs under
an AI execution context derived from the principal that created the job (for a job an
agent created, the human that agent acted for); its outcome is recorded on the row as
``last_run_at``, ``last_status`` and ``last_error``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tenantgate.agent import AgentRuntime, RunStatus
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import PrincipalService, system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.logs import get_logger
from tenantgate.schedules import Schedule, ScheduleKind
from tenantgate.store import Database

__all__ = ["ScheduleRun", "ScheduleRunner"]

_SESSIONS = uuid.UUID("0b7c1f4e-2d6a-4c8e-9f31-5a2e7d9c4b60")  # namespace of schedule session ids
_log = get_logger("tenantgate.schedules")

# Only active tenants' jobs: a suspended tenant, or one being purged, runs nothing.
_DUE = {
    "cron": sa.text(
        "SELECT tenant_id, id FROM tenantgate.cron_jobs WHERE deleted_at IS NULL AND enabled AND next_run_at <= :now"
        " AND tenant_id IN (SELECT id FROM tenantgate.tenants WHERE status = 'active')"
        " ORDER BY next_run_at LIMIT :limit"
    ),
    "heartbeat": sa.text(
        "SELECT tenant_id, id FROM tenantgate.heartbeat_tasks WHERE deleted_at IS NULL AND enabled"
        " AND next_due_at <= :now AND tenant_id IN (SELECT id FROM tenantgate.tenants WHERE status = 'active')"
        " ORDER BY next_due_at LIMIT :limit"
    ),
}
_CLAIM_CRON = sa.text(
    "SELECT * FROM tenantgate.cron_jobs WHERE tenant_id = :tenant_id AND id = :id AND deleted_at IS NULL AND enabled"
    " AND next_run_at <= :now FOR UPDATE SKIP LOCKED"
)
_CLAIM_HEARTBEAT = sa.text(
    "SELECT * FROM tenantgate.heartbeat_tasks WHERE tenant_id = :tenant_id AND id = :id AND deleted_at IS NULL"
    " AND enabled AND next_due_at <= :now FOR UPDATE SKIP LOCKED"
)
_NEXT = {
    "cron": sa.text(
        "UPDATE tenantgate.cron_jobs SET next_run_at = :next, last_run_at = :now"
        " WHERE tenant_id = :tenant_id AND id = :id"
    ),
    "heartbeat": sa.text(
        "UPDATE tenantgate.heartbeat_tasks SET next_due_at = :next, last_run_at = :now"
        " WHERE tenant_id = :tenant_id AND id = :id"
    ),
}
_OUTCOME = {
    "cron": sa.text(
        "UPDATE tenantgate.cron_jobs SET last_status = :status, last_error = :error"
        " WHERE tenant_id = :tenant_id AND id = :id"
    ),
    "heartbeat": sa.text(
        "UPDATE tenantgate.heartbeat_tasks SET last_status = :status, last_error = :error"
        " WHERE tenant_id = :tenant_id AND id = :id"
    ),
}
_STARTED_BY = sa.text(
    "SELECT started_by FROM tenantgate.runs WHERE tenant_id = :tenant_id AND execution_id = :id LIMIT 1"
)
_SESSION = sa.text(
    "INSERT INTO tenantgate.sessions (tenant_id, id, channel, title, created_by)"
    " VALUES (:tenant_id, :id, :channel, :title, :created_by) ON CONFLICT DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class ScheduleRun:
    """One due job that was run: which, and how its turn ended."""

    kind: str  # cron or heartbeat
    tenant_id: uuid.UUID
    id: uuid.UUID
    status: str
    run_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class _Claimed:
    kind: str
    tenant_id: uuid.UUID
    id: uuid.UUID
    name: str
    text: str
    created_by: uuid.UUID


class ScheduleRunner:
    """Finds due jobs and runs each as an agent turn, once, recording the outcome on its row."""

    def __init__(
        self, *, db: Database, runtime: AgentRuntime, principals: PrincipalService, audit: AuditLog,
        mode: DeploymentMode,
    ) -> None:  # fmt: skip
        self._db = db
        self._runtime = runtime
        self._principals = principals
        self._audit = audit
        self._mode = mode

    async def run_due(self, *, now: datetime | None = None, limit: int = 100) -> list[ScheduleRun]:
        """Run every job due at ``now``; returns what ran."""
        now = now or datetime.now(UTC)
        ran: list[ScheduleRun] = []
        for kind in ("cron", "heartbeat"):
            async with self._db.admin() as conn:  # ids only: the rest happens in each tenant's transaction
                due = (await conn.execute(_DUE[kind], {"now": now, "limit": limit})).all()
            for tenant_id, job_id in due:
                run = await self._run(kind, tenant_id, job_id, now)
                if run is not None:
                    ran.append(run)
        return ran

    async def _run(self, kind: str, tenant_id: uuid.UUID, job_id: uuid.UUID, now: datetime) -> ScheduleRun | None:
        system = system_context(tenant_id, mode=self._mode, request_id=f"{kind}:{job_id}")
        claimed = await self._claim(system, kind, job_id, now)
        if claimed is None:
            return None  # another worker has it, or it changed
        run_id: uuid.UUID | None = None
        try:
            ctx = await self._creator(system, claimed.created_by)
            session_id = await self._session(system, ctx, claimed)
            result = await self._runtime.run_turn(ctx, session_id, claimed.text)
            run_id, status, error = result.run_id, result.status.value, result.reason
            if result.status is RunStatus.COMPLETED:
                error = None
        except Exception as exc:  # noqa: BLE001 - a job's failure is recorded on it, the worker goes on
            status, error = RunStatus.FAILED.value, f"{type(exc).__name__}: {exc}"
        async with self._db.tenant(system) as conn:
            params = {"tenant_id": tenant_id, "id": job_id, "status": status, "error": error[:2000] if error else None}
            await conn.execute(_OUTCOME[kind], params)
            await self._audit.append(
                conn, system,
                AuditEvent(action=f"{kind}.ran", decision="succeeded" if status == "completed" else "failed",
                           payload={"job_id": str(job_id), "status": status,
                                    **({"run_id": str(run_id)} if run_id else {})}),
            )  # fmt: skip
        return ScheduleRun(kind, tenant_id, job_id, status, run_id)

    async def _claim(self, system: TenantContext, kind: str, job_id: uuid.UUID, now: datetime) -> _Claimed | None:
        params: dict[str, Any] = {"tenant_id": system.tenant_id, "id": job_id, "now": now}
        async with self._db.tenant(system) as conn:
            row = (await conn.execute(_CLAIM_CRON if kind == "cron" else _CLAIM_HEARTBEAT, params)).first()
            if row is None:
                return None
            if kind == "cron":
                schedule = Schedule(ScheduleKind(row.kind), row.schedule, row.timezone)
                upcoming = schedule.next_run(now)  # None for a one-time job: it ran
                claimed = _Claimed(kind, system.tenant_id, job_id, row.name, row.message, row.created_by)
            else:
                upcoming = now + timedelta(seconds=row.every_seconds)
                claimed = _Claimed(kind, system.tenant_id, job_id, row.name, row.prompt, row.created_by)
            await conn.execute(_NEXT[kind], {**params, "next": upcoming})
        return claimed

    async def _creator(self, system: TenantContext, created_by: uuid.UUID) -> TenantContext:
        """The context of the principal behind the job; for an agent-created job, the one it acted for."""
        principals = {p.id: p for p in await self._principals.list(system)}
        principal = principals.get(created_by)
        if principal is None:
            async with self._db.tenant(system) as conn:
                started_by = await conn.scalar(_STARTED_BY, {"tenant_id": system.tenant_id, "id": created_by})
            principal = principals.get(started_by) if started_by is not None else None
        if principal is None or principal.disabled_at is not None:
            raise LookupError("the principal that created this job no longer exists or is disabled")
        return TenantContext(
            tenant_id=system.tenant_id, principal_id=principal.id, kind=principal.kind,
            roles=frozenset(principal.roles), mode=system.mode, request_id=system.request_id,
        )  # fmt: skip

    async def _session(self, system: TenantContext, ctx: TenantContext, job: _Claimed) -> uuid.UUID:
        """One session per job, so its runs read as one conversation."""
        session_id = uuid.uuid5(_SESSIONS, f"{job.tenant_id}:{job.kind}:{job.id}")
        params = {"tenant_id": job.tenant_id, "id": session_id, "channel": job.kind, "title": job.name[:200],
                  "created_by": ctx.principal_id}  # fmt: skip
        async with self._db.tenant(system) as conn:
            await conn.execute(_SESSION, params)
        return session_id
