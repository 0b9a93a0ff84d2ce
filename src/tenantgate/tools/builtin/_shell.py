"""The ``shell`` tool: one command in the tenant's workspace, inside the sandbox (self-hosted only).

It declares ``shell`` and ``process``, so a saas registry never holds it. Where the
sandbox cannot run (no working ``bwrap``), start-up still succeeds but every call is
refused with the install hint. With the operator's explicit opt-out
(``TENANTGATE_SHELL_SANDBOX=none``) commands run unsandboxed, still with the limits and a
scrubbed environment, and every call logs a warning.
"""

# No ``from __future__ import annotations`` here: the handler's argument model is built inside
# the factory (its timeout bound comes from the settings), and the decorator must resolve it.
import asyncio

from pydantic import BaseModel, ConfigDict, Field

from tenantgate.logs import get_logger
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall, ToolUnavailable
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool
from tenantgate.tools.builtin._sandbox import Sandbox
from tenantgate.tools.builtin._workspace import Workspaces

__all__ = ["SandboxUnavailable", "shell_tools"]

_log = get_logger("tenantgate.tools.shell")
_MAX_COMMAND = 16 * 1024


class SandboxUnavailable(ToolUnavailable):
    """The shell sandbox cannot run on this machine; the shell tool refuses every call until it can."""

    code = "sandbox_unavailable"


class ShellOut(BaseModel):
    exit_code: int | None
    signal: str | None
    timed_out: bool
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: float


def shell_tools(
    workspaces: Workspaces,
    sandbox: Sandbox,
    *,
    default_timeout_s: float = 30.0,
    max_timeout_s: float = 300.0,
    unavailable: str | None = None,
    announce: bool = True,
) -> tuple[list[Tool], list[ToolPackage]]:
    """The ``shell@v1`` tool and its ``shell`` package. ``unavailable``: why the sandbox cannot run."""

    class ShellArgs(BaseModel):
        model_config = ConfigDict(extra="forbid")

        command: str = Field(min_length=1, max_length=_MAX_COMMAND, description="A /bin/sh command line.")
        timeout: float = Field(
            default=default_timeout_s, gt=0, le=max_timeout_s, description="Seconds before it is killed."
        )

    if not announce:
        pass  # saas: the tool is built only to be named when the registry refuses it
    elif sandbox.kind == "none":
        _log.warning(
            "shell.sandbox_disabled",
            detail="TENANTGATE_SHELL_SANDBOX=none: shell commands run without a sandbox and see the whole machine",
        )
    elif unavailable is not None:
        _log.warning("shell.sandbox_unavailable", detail=unavailable)

    @tool(
        "shell@v1",
        description=(
            "Run a shell command in your workspace (/workspace) inside a sandbox: no network, limited CPU, "
            "memory and processes, output capped."
        ),
        effect=ToolEffect.DESTRUCTIVE,
        capabilities={Capability.SHELL, Capability.PROCESS},
        output=ShellOut,
        # The executor's limit sits above the command's own: the sandbox kills first and reports it.
        timeout_s=max_timeout_s + 10,
    )
    async def shell(call: ToolCall, args: ShellArgs) -> ShellOut:
        if unavailable is not None:
            raise SandboxUnavailable(unavailable)
        if sandbox.kind == "none":
            _log.warning("shell.unsandboxed_call", tenant_id=str(call.ctx.tenant_id), call_id=str(call.call_id))
        space = workspaces.for_tenant(call.ctx)
        await asyncio.to_thread(space.ensure)  # 0700, handed to the sandbox user, before it is mounted
        done = await sandbox.run(space.directory, args.command, timeout_s=args.timeout)
        return ShellOut(
            exit_code=done.exit_code,
            signal=done.signal,
            timed_out=done.timed_out,
            stdout=done.stdout,
            stderr=done.stderr,
            stdout_truncated=done.stdout_truncated,
            stderr_truncated=done.stderr_truncated,
            duration_ms=round(done.duration_ms, 2),
        )

    package = ToolPackage("shell", "Run shell commands in the tenant's workspace, sandboxed.", (shell.name,))
    return [shell], [package]
