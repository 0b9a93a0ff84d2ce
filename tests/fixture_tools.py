"""Tools for tests: harmless stand-ins with the shapes of the real ones, and a record of what ran.

``EXECUTED`` is the ground truth of side effects: every handler appends
``(tenant_id, tool, arguments)`` before doing anything else.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from tenantgate.context import DeploymentMode, Role
from tenantgate.tools import Capability, Tool, ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool

EXECUTED: list[tuple[str, str, dict[str, Any]]] = []


def _ran(call: ToolCall, name: str, args: BaseModel) -> None:
    EXECUTED.append((str(call.ctx.tenant_id), name, args.model_dump(mode="json")))


class EchoArgs(BaseModel):
    text: str = Field(max_length=1000)


class EchoOut(BaseModel):
    text: str


@tool("echo@v1", description="Repeat the text.", effect=ToolEffect.READ, output=EchoOut)
async def echo(call: ToolCall, args: EchoArgs) -> EchoOut:
    _ran(call, "echo@v1", args)
    return EchoOut(text=args.text)


class Nothing(BaseModel):
    pass


@tool("whoami_tool@v1", description="Say which tenant the call runs for.", effect=ToolEffect.READ)
async def whoami_tool(call: ToolCall, args: Nothing) -> dict[str, str]:
    _ran(call, "whoami_tool@v1", args)
    return {"tenant_id": str(call.ctx.tenant_id), "principal_id": str(call.ctx.principal_id)}


class SleepArgs(BaseModel):
    seconds: float = Field(ge=0, le=5)


@tool("slow@v1", description="Sleep.", effect=ToolEffect.READ, timeout_s=0.2)
async def slow(call: ToolCall, args: SleepArgs) -> dict[str, bool]:
    _ran(call, "slow@v1", args)
    await asyncio.sleep(args.seconds)
    return {"slept": True}


@tool("crash@v1", description="Fail.", effect=ToolEffect.READ)
async def crash(call: ToolCall, args: Nothing) -> dict[str, str]:
    _ran(call, "crash@v1", args)
    raise RuntimeError("the tool broke")


@tool("bad_output@v1", description="Return the wrong shape.", effect=ToolEffect.READ, output=EchoOut)
async def bad_output(call: ToolCall, args: Nothing) -> dict[str, int]:
    _ran(call, "bad_output@v1", args)
    return {"unexpected": 1}


class SendArgs(BaseModel):
    to: str = Field(pattern=r"^\+[0-9]{6,15}$")
    message: str = Field(min_length=1, max_length=4096)


@tool(
    "whatsapp_send@v1",
    description="Send a WhatsApp message.",
    effect=ToolEffect.EXTERNAL,
    capabilities={Capability.MESSAGING_OUTBOUND, Capability.CREDENTIALS},
    high_impact=True,
    integration="whatsapp",
)
async def whatsapp_send(call: ToolCall, args: SendArgs) -> dict[str, str]:
    _ran(call, "whatsapp_send@v1", args)
    return {"status": "sent", "to": args.to}


class FetchArgs(BaseModel):
    url: str = Field(max_length=2048)


@tool(
    "web_fetch@v1",
    description="Fetch a web page.",
    effect=ToolEffect.READ,
    capabilities={Capability.NET_EGRESS},
    integration="web",
)
async def web_fetch(call: ToolCall, args: FetchArgs) -> dict[str, str]:
    _ran(call, "web_fetch@v1", args)
    return {"url": args.url, "text": "<page text>"}


class WipeArgs(BaseModel):
    scope: str = Field(pattern=r"^[a-z]+$")


@tool(
    "memory_wipe@v1",
    description="Delete the tenant's memory.",
    effect=ToolEffect.DESTRUCTIVE,
    capabilities={Capability.MEMORY},
    required_role=Role.ADMIN,
)
async def memory_wipe(call: ToolCall, args: WipeArgs) -> dict[str, str]:
    _ran(call, "memory_wipe@v1", args)
    return {"wiped": args.scope}


class ShellArgs(BaseModel):
    command: str


@tool("shell@v1", description="Run a shell command.", effect=ToolEffect.DESTRUCTIVE, capabilities={Capability.SHELL})
async def shell(call: ToolCall, args: ShellArgs) -> dict[str, str]:
    _ran(call, "shell@v1", args)
    return {"stdout": ""}


class PathArgs(BaseModel):
    path: str


@tool("write_file@v1", description="Write a file.", effect=ToolEffect.WRITE, capabilities={Capability.FS_WRITE})
async def write_file(call: ToolCall, args: PathArgs) -> dict[str, str]:
    _ran(call, "write_file@v1", args)
    return {"written": args.path}


@tool("python_exec@v1", description="Run Python.", effect=ToolEffect.DESTRUCTIVE, capabilities={Capability.PROCESS})
async def python_exec(call: ToolCall, args: ShellArgs) -> dict[str, str]:
    _ran(call, "python_exec@v1", args)
    return {"stdout": ""}


SAFE_TOOLS: list[Tool] = [echo, whoami_tool, slow, crash, bad_output, whatsapp_send, web_fetch, memory_wipe]
LOCAL_TOOLS: list[Tool] = [shell, write_file, python_exec]
PACKAGES = [
    ToolPackage("basics", "Test basics.", ("echo@v1", "whoami_tool@v1", "slow@v1", "crash@v1", "bad_output@v1")),
    ToolPackage("whatsapp", "WhatsApp.", ("whatsapp_send@v1",)),
    ToolPackage("web", "The web.", ("web_fetch@v1",)),
    ToolPackage("memory", "Memory.", ("memory_wipe@v1",)),
    ToolPackage("local", "Shell and files.", ("shell@v1", "write_file@v1", "python_exec@v1")),
]


def registry(mode: DeploymentMode) -> ToolRegistry:
    """What a platform would build: every tool the mode allows, the local ones left out in saas."""
    built = ToolRegistry(mode)
    built.register_available([*SAFE_TOOLS, *LOCAL_TOOLS])
    for package in PACKAGES:
        built.add_package(package)
    return built


# For the plugin-loading test: a reference "tests.fixture_tools:PLUGIN" names these.
PLUGIN: list[Any] = [echo, ToolPackage("plugin-basics", "Echo, as a plugin.", ("echo@v1",))]
LOCAL_PLUGIN: list[Any] = [shell]
CONTACTS_NOT_TOOLS = ["+4930123456"]
