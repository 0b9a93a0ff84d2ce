"""What a tool is: a versioned name, a schema, the capabilities it needs and the effect it has.

Declaring one is a decorator over an async handler; the argument model is read from the
handler's annotation, so the schema the planner sees is the schema that is enforced::

    class EchoArgs(BaseModel):
        text: str

    @tool("echo@v1", description="Repeat the text.", effect=ToolEffect.READ)
    async def echo(call: ToolCall, args: EchoArgs) -> dict[str, str]:
        return {"text": args.text}
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, get_type_hints

from pydantic import BaseModel

from tenantgate.context import Role
from tenantgate.tools._resources import ToolCall

__all__ = [
    "LOCAL_CAPABILITIES",
    "TOOL_NAME",
    "Capability",
    "Tool",
    "ToolCall",
    "ToolEffect",
    "ToolHandler",
    "ToolSpec",
    "tool",
]

TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}@v[1-9][0-9]{0,3}$")
INTEGRATION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class Capability(StrEnum):
    """The closed vocabulary of what a tool may need."""

    SHELL = "shell"
    FS_READ = "fs.read"
    FS_WRITE = "fs.write"
    PROCESS = "process"
    NET_LOCAL = "net.local"  # reaching hosts on the operator's own network
    NET_EGRESS = "net.egress"
    MESSAGING_OUTBOUND = "messaging.outbound"
    SCHEDULE = "schedule"
    MEMORY = "memory"
    CREDENTIALS = "credentials"
    WORKFLOW = "workflow"
    ARTIFACTS = "artifacts"  # storing content in the tenant's private artifact store


# Capabilities that act on the machine tenantgate runs on. In saas mode a tool that
# needs one of these cannot be registered, so no prompt and no policy row can reach it.
LOCAL_CAPABILITIES = frozenset(
    {Capability.SHELL, Capability.FS_READ, Capability.FS_WRITE, Capability.PROCESS, Capability.NET_LOCAL}
)


class ToolEffect(StrEnum):
    READ = "read"
    WRITE = "write"
    EXTERNAL = "external"
    DESTRUCTIVE = "destructive"


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """Everything the gate and the planner know about a tool; nothing about how it runs."""

    name: str
    description: str
    arguments: type[BaseModel]
    effect: ToolEffect
    capabilities: frozenset[Capability] = frozenset()
    output: type[BaseModel] | None = None
    high_impact: bool = False
    # Privileged tools say ADMIN: members then cannot call them, whatever a policy grants.
    required_role: Role = Role.MEMBER
    # The external system it acts on ("whatsapp", "google_sheets"): kill switches name it.
    integration: str | None = None
    timeout_s: float = 30.0
    # Proposed only by platform channel code (a reply to the conversation that asked), never by a
    # planner or an API client: the gate refuses it unless the boundary is told it is the channel.
    channel_only: bool = False
    # Top-level argument names (and aliases), for the gate's unknown-argument check.
    argument_names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = self.arguments.model_fields
        names = frozenset(fields) | frozenset(f.alias for f in fields.values() if f.alias)
        object.__setattr__(self, "argument_names", names)
        if not TOOL_NAME.fullmatch(self.name):
            raise ValueError(f"tool name {self.name!r} must look like name@v1 (lowercase, digits, _)")
        if not self.description.strip():
            raise ValueError(f"tool {self.name} needs a description for the model")
        if self.integration is not None and not INTEGRATION_NAME.fullmatch(self.integration):
            raise ValueError(f"tool {self.name}: integration {self.integration!r} is not a valid name")
        if not 0 < self.timeout_s <= 3600:
            raise ValueError(f"tool {self.name}: timeout_s must be in (0, 3600]")
        unknown = [c for c in self.capabilities if not isinstance(c, Capability)]
        if unknown:
            raise ValueError(f"tool {self.name}: unknown capabilities {unknown}")

    @property
    def local_capabilities(self) -> frozenset[Capability]:
        return self.capabilities & LOCAL_CAPABILITIES

    def describe(self) -> dict[str, Any]:
        """What a planner (and GET /v1/tools) sees: name, description, JSON Schemas, effect."""
        return _describe(self)


@functools.cache
def _describe(spec: ToolSpec) -> dict[str, Any]:
    # Schemas are generated once per spec: GET /v1/tools and every planner turn read them.
    return {
        "name": spec.name,
        "description": spec.description,
        "input_schema": spec.arguments.model_json_schema(),
        "output_schema": spec.output.model_json_schema() if spec.output is not None else None,
        "effect": spec.effect.value,
        "capabilities": sorted(c.value for c in spec.capabilities),
        "high_impact": spec.high_impact,
        "required_role": spec.required_role.value,
        "integration": spec.integration,
        "channel_only": spec.channel_only,
    }


ToolHandler = Callable[[ToolCall, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    spec: ToolSpec
    handler: ToolHandler

    @property
    def name(self) -> str:
        return self.spec.name


def tool(
    name: str,
    *,
    description: str,
    effect: ToolEffect,
    capabilities: frozenset[Capability] | set[Capability] = frozenset(),
    output: type[BaseModel] | None = None,
    high_impact: bool = False,
    required_role: Role = Role.MEMBER,
    integration: str | None = None,
    timeout_s: float = 30.0,
    channel_only: bool = False,
) -> Callable[[ToolHandler], Tool]:
    """Declare a tool from an async handler ``(call: ToolCall, args: SomeModel) -> result``."""

    def declare(handler: ToolHandler) -> Tool:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"tool {name}: the handler must be an async function")
        params = list(inspect.signature(handler).parameters)
        hints = get_type_hints(handler)
        arguments = hints.get(params[1]) if len(params) == 2 else None
        if not (isinstance(arguments, type) and issubclass(arguments, BaseModel)):
            raise TypeError(f"tool {name}: the handler's second parameter must be annotated with a pydantic model")
        spec = ToolSpec(
            name=name, description=description, arguments=arguments, effect=effect,
            capabilities=frozenset(capabilities), output=output, high_impact=high_impact,
            required_role=required_role, integration=integration, timeout_s=timeout_s,
            channel_only=channel_only,
        )  # fmt: skip
        return Tool(spec=spec, handler=handler)

    return declare
