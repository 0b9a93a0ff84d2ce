"""The cron tool: add, list and remove the tenant's scheduled messages (package ``cron``, both modes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenantgate.schedules import MAX_EVERY_SECONDS, MAX_MESSAGE_CHARS, NAME_PATTERN, CronJob, CronStore, ScheduleKind
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool

__all__ = ["CronArgs", "cron_tools", "job_json"]


class CronArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["add", "list", "remove"]
    name: str | None = Field(None, pattern=NAME_PATTERN, description="The job's name (add, remove).")
    at: str | None = Field(None, max_length=64, description="add: one run at this ISO 8601 time with offset.")
    every_seconds: int | None = Field(None, ge=1, le=MAX_EVERY_SECONDS, description="add: run on this interval.")
    cron: str | None = Field(None, max_length=200, description="add: a cron expression, e.g. '0 9 * * 1-5'.")
    timezone: str = Field("UTC", max_length=64, description="add: the IANA zone a cron expression runs in.")
    message: str | None = Field(None, max_length=MAX_MESSAGE_CHARS, description="add: what the agent is told.")

    @model_validator(mode="after")
    def _fits_action(self) -> CronArgs:
        schedules = [s for s in (self.at, self.every_seconds, self.cron) if s is not None]
        if self.action == "add":
            if self.name is None or not self.message:
                raise ValueError("add needs a name and a message")
            if len(schedules) != 1:
                raise ValueError("add needs exactly one of at, every_seconds or cron")
        elif self.action == "remove" and self.name is None:
            raise ValueError("remove needs the job's name")
        return self

    def schedule(self) -> tuple[ScheduleKind, str | int]:
        if self.at is not None:
            return ScheduleKind.AT, self.at
        if self.every_seconds is not None:
            return ScheduleKind.EVERY, self.every_seconds
        assert self.cron is not None
        return ScheduleKind.CRON, self.cron


def job_json(job: CronJob) -> dict[str, Any]:
    return {"id": str(job.id), "name": job.name, **job.schedule.describe(), "message": job.message,
            "enabled": job.enabled, "next_run_at": job.next_run_at.isoformat() if job.next_run_at else None,
            "version": job.version}  # fmt: skip


def cron_tools(store: CronStore) -> tuple[list[Tool], list[ToolPackage]]:
    """The cron tool over ``store``, and the ``cron`` package."""

    @tool(
        "cron@v1",
        description=(
            "Schedule a message to the agent: action 'add' (name, message and one of at / every_seconds / cron "
            "with timezone), 'list', or 'remove' (name)."
        ),
        effect=ToolEffect.WRITE,
        capabilities={Capability.SCHEDULE},
    )
    async def cron(call: ToolCall, args: CronArgs) -> dict[str, Any]:
        if args.action == "list":
            return {"jobs": [job_json(j) for j in await store.jobs(call.ctx)]}
        assert args.name is not None
        if args.action == "remove":
            return {"removed": job_json(await store.remove(call.ctx, args.name))}
        assert args.message is not None
        kind, value = args.schedule()
        job = await store.add(call.ctx, name=args.name, kind=kind, schedule=value, message=args.message,
                              timezone=args.timezone)  # fmt: skip
        return {"added": job_json(job)}

    return [cron], [ToolPackage("cron", "Scheduled messages to the agent.", (cron.name,))]
