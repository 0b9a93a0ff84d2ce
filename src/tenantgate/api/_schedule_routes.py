"""Cron jobs and heartbeat tasks over HTTP. Members read; owners and admins change, delete and restore definitions.

Versions are listed oldest first.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._lifecycle import IncludeDeleted, RestoreIn, version_of
from tenantgate.auth import require_manager
from tenantgate.schedules import (
    MAX_EVERY_SECONDS,
    MAX_MESSAGE_CHARS,
    NAME_PATTERN,
    CronJob,
    DefinitionVersion,
    HeartbeatTask,
    ScheduleKind,
)

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class CronJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: ScheduleKind
    schedule: str = Field(min_length=1, max_length=200, description="ISO time (at), seconds (every) or expression.")
    timezone: str = Field("UTC", max_length=64)
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class CronJobOut(BaseModel):
    id: uuid.UUID
    name: str
    kind: ScheduleKind
    schedule: str
    timezone: str
    message: str
    enabled: bool
    next_run_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, j: CronJob) -> CronJobOut:
        return cls(id=j.id, name=j.name, kind=j.schedule.kind, schedule=j.schedule.spec, timezone=j.schedule.timezone,
                   message=j.message, enabled=j.enabled, next_run_at=j.next_run_at, version=j.version,
                   created_at=j.created_at, updated_at=j.updated_at, deleted_at=j.deleted_at)  # fmt: skip


class DefinitionVersionOut(BaseModel):
    """A version of a cron job's or heartbeat task's definition."""

    version: int
    definition: dict[str, Any]
    change: str
    changed_at: datetime
    changed_by: uuid.UUID

    @classmethod
    def of(cls, v: DefinitionVersion) -> DefinitionVersionOut:
        return cls(version=v.version, definition=v.definition, change=v.change, changed_at=v.changed_at,
                   changed_by=v.changed_by)  # fmt: skip


class CronJobDetail(CronJobOut):
    versions: list[DefinitionVersionOut]


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    prompt: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    every_seconds: int = Field(ge=1, le=MAX_EVERY_SECONDS)


class HeartbeatPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(None, min_length=1, max_length=MAX_MESSAGE_CHARS)
    every_seconds: int | None = Field(None, ge=1, le=MAX_EVERY_SECONDS)
    enabled: bool | None = None


class HeartbeatOut(BaseModel):
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
    def of(cls, t: HeartbeatTask) -> HeartbeatOut:
        return cls(id=t.id, name=t.name, prompt=t.prompt, every_seconds=t.every_seconds, enabled=t.enabled,
                   next_due_at=t.next_due_at, created_at=t.created_at, updated_at=t.updated_at, version=t.version,
                   deleted_at=t.deleted_at)  # fmt: skip


# --- cron jobs --------------------------------------------------------------------------------


@router.get("/cron-jobs", response_model=list[CronJobOut], tags=["schedules"])
async def list_cron_jobs(
    ctx: Caller, services: ServicesDep, include_deleted: IncludeDeleted = False
) -> list[CronJobOut]:
    return [CronJobOut.of(j) for j in await services.cron.jobs(ctx, include_deleted=include_deleted)]


@router.post(
    "/cron-jobs", response_model=CronJobOut, status_code=201, tags=["schedules"], responses=error_responses(409)
)
async def add_cron_job(body: CronJobIn, ctx: Caller, services: ServicesDep) -> CronJobOut:
    """Add a job (owner/admin). In saas the count and the shortest interval are limited."""
    require_manager(ctx)
    job = await services.cron.add(ctx, name=body.name, kind=body.kind, schedule=body.schedule,
                                  message=body.message, timezone=body.timezone)  # fmt: skip
    return CronJobOut.of(job)


@router.get("/cron-jobs/{job_id}", response_model=CronJobDetail, tags=["schedules"], responses=error_responses(404))
async def get_cron_job(job_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> CronJobDetail:
    """A job with every version of its definition."""
    job = await services.cron.get(ctx, job_id)
    versions = [DefinitionVersionOut.of(v) for v in await services.cron.versions(ctx, job_id)]
    return CronJobDetail(**CronJobOut.of(job).model_dump(), versions=versions)


@router.delete("/cron-jobs/{job_id}", response_model=CronJobOut, tags=["schedules"], responses=error_responses(404))
async def remove_cron_job(job_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> CronJobOut:
    """Remove a job softly: it stops running; restore brings it back with its schedule."""
    require_manager(ctx)
    return CronJobOut.of(await services.cron.remove(ctx, job_id))


@router.get(
    "/cron-jobs/{job_id}/versions",
    response_model=list[DefinitionVersionOut],
    tags=["schedules"],
    responses=error_responses(404),
)
async def cron_job_versions(job_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> list[DefinitionVersionOut]:
    """Every version of a job's definition, removed jobs included, oldest first."""
    return [DefinitionVersionOut.of(v) for v in await services.cron.versions(ctx, job_id)]


@router.post(
    "/cron-jobs/{job_id}/restore", response_model=CronJobOut, tags=["schedules"], responses=error_responses(404, 409)
)
async def restore_cron_job(
    job_id: uuid.UUID, ctx: Caller, services: ServicesDep, body: RestoreIn | None = None
) -> CronJobOut:
    """Bring back a definition as a new version (owner/admin), scheduled from now; counts against the cap."""
    require_manager(ctx)
    return CronJobOut.of(await services.cron.restore(ctx, job_id, version=version_of(body)))


# --- heartbeat tasks --------------------------------------------------------------------------


@router.get("/heartbeats", response_model=list[HeartbeatOut], tags=["schedules"])
async def list_heartbeats(
    ctx: Caller, services: ServicesDep, include_deleted: IncludeDeleted = False
) -> list[HeartbeatOut]:
    return [HeartbeatOut.of(t) for t in await services.heartbeat.tasks(ctx, include_deleted=include_deleted)]


@router.post(
    "/heartbeats", response_model=HeartbeatOut, status_code=201, tags=["schedules"], responses=error_responses(409)
)
async def add_heartbeat(body: HeartbeatIn, ctx: Caller, services: ServicesDep) -> HeartbeatOut:
    require_manager(ctx)
    task = await services.heartbeat.add(ctx, name=body.name, prompt=body.prompt, every_seconds=body.every_seconds)
    return HeartbeatOut.of(task)


@router.get("/heartbeats/{task_id}", response_model=HeartbeatOut, tags=["schedules"], responses=error_responses(404))
async def get_heartbeat(task_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> HeartbeatOut:
    return HeartbeatOut.of(await services.heartbeat.get(ctx, task_id))


@router.patch("/heartbeats/{task_id}", response_model=HeartbeatOut, tags=["schedules"], responses=error_responses(404))
async def update_heartbeat(
    task_id: uuid.UUID, body: HeartbeatPatch, ctx: Caller, services: ServicesDep
) -> HeartbeatOut:
    """Change the prompt or interval, or pause (enabled=false) and resume."""
    require_manager(ctx)
    task = await services.heartbeat.update(
        ctx, task_id, prompt=body.prompt, every_seconds=body.every_seconds, enabled=body.enabled
    )
    return HeartbeatOut.of(task)


@router.delete("/heartbeats/{task_id}", response_model=HeartbeatOut, tags=["schedules"], responses=error_responses(404))
async def remove_heartbeat(task_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> HeartbeatOut:
    require_manager(ctx)
    return HeartbeatOut.of(await services.heartbeat.remove(ctx, task_id))


@router.get(
    "/heartbeats/{task_id}/versions",
    response_model=list[DefinitionVersionOut],
    tags=["schedules"],
    responses=error_responses(404),
)
async def heartbeat_versions(task_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> list[DefinitionVersionOut]:
    """Every version of a task's definition, removed tasks included, oldest first."""
    return [DefinitionVersionOut.of(v) for v in await services.heartbeat.versions(ctx, task_id)]


@router.post(
    "/heartbeats/{task_id}/restore",
    response_model=HeartbeatOut,
    tags=["schedules"],
    responses=error_responses(404, 409),
)
async def restore_heartbeat(
    task_id: uuid.UUID, ctx: Caller, services: ServicesDep, body: RestoreIn | None = None
) -> HeartbeatOut:
    """Bring back a definition as a new version (owner/admin), due from now; counts against the cap."""
    require_manager(ctx)
    return HeartbeatOut.of(await services.heartbeat.restore(ctx, task_id, version=version_of(body)))
