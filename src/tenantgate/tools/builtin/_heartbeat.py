"""The heartbeat tool: recurring checks the agent runs (package ``heartbeat``, both modes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenantgate.schedules import MAX_EVERY_SECONDS, MAX_MESSAGE_CHARS, NAME_PATTERN, HeartbeatStore, HeartbeatTask
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool

__all__ = ["HeartbeatArgs", "heartbeat_tools", "task_json"]


class HeartbeatArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["add", "list", "remove", "pause", "resume"]
    name: str | None = Field(None, pattern=NAME_PATTERN, description="The task's name (all actions but list).")
    prompt: str | None = Field(None, max_length=MAX_MESSAGE_CHARS, description="add: what to check.")
    every_seconds: int | None = Field(None, ge=1, le=MAX_EVERY_SECONDS, description="add: how often.")

    @model_validator(mode="after")
    def _fits_action(self) -> HeartbeatArgs:
        if self.action != "list" and self.name is None:
            raise ValueError(f"{self.action} needs the task's name")
        if self.action == "add" and (not self.prompt or self.every_seconds is None):
            raise ValueError("add needs a prompt and every_seconds")
        return self


def task_json(task: HeartbeatTask) -> dict[str, Any]:
    due = task.next_due_at.isoformat() if task.next_due_at else None
    return {"id": str(task.id), "name": task.name, "prompt": task.prompt, "every_seconds": task.every_seconds,
            "enabled": task.enabled, "next_due_at": due}  # fmt: skip


def heartbeat_tools(store: HeartbeatStore) -> tuple[list[Tool], list[ToolPackage]]:
    """The heartbeat tool over ``store``, and the ``heartbeat`` package."""

    @tool(
        "heartbeat@v1",
        description=(
            "Recurring checks: action 'add' (name, prompt, every_seconds), 'list', 'remove', 'pause' or "
            "'resume' (name)."
        ),
        effect=ToolEffect.WRITE,
        capabilities={Capability.SCHEDULE},
    )
    async def heartbeat(call: ToolCall, args: HeartbeatArgs) -> dict[str, Any]:
        ctx = call.ctx
        if args.action == "list":
            return {"tasks": [task_json(t) for t in await store.tasks(ctx)]}
        assert args.name is not None
        if args.action == "add":
            assert args.prompt is not None
            assert args.every_seconds is not None
            task = await store.add(ctx, name=args.name, prompt=args.prompt, every_seconds=args.every_seconds)
        elif args.action == "remove":
            task = await store.remove(ctx, args.name)
        elif args.action == "pause":
            task = await store.pause(ctx, args.name)
        else:
            task = await store.resume(ctx, args.name)
        return {args.action: task_json(task)}

    return [heartbeat], [ToolPackage("heartbeat", "Recurring checks the agent runs.", (heartbeat.name,))]
