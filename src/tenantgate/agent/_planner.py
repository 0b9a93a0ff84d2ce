"""The planner interface: given the conversation and the tool specs, propose tool calls or a reply.

A planner is untrusted: whatever it returns is checked by the runtime (schema) and the
gate (policy) before anything runs. The conversation is provider-neutral; each planner
renders it in its provider's wire format and parses the answer back into a :class:`Plan`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tenantgate.errors import PermissionDenied, TenantgateError
from tenantgate.tools import ToolSpec

__all__ = [
    "AssistantTurn",
    "Conversation",
    "Plan",
    "PlannedCall",
    "Planner",
    "PlannerError",
    "ToolResultItem",
    "ToolResults",
    "Usage",
    "UserTurn",
    "VendorNotEligible",
    "tool_from_wire",
    "wire_name",
]

# Providers accept ``^[a-zA-Z0-9_-]{1,64}$`` as function names; ours carry ``@v1``.
_WIRE = re.compile(r"^[a-z][a-z0-9_]{0,62}__v[1-9][0-9]{0,3}$")


def wire_name(tool: str) -> str:
    """``echo@v1`` as providers can carry it: ``echo__v1``."""
    name, _, version = tool.rpartition("@")
    return f"{name}__{version}"


def tool_from_wire(name: str) -> str:
    """The tool name a provider's function name stands for; unchanged (so the gate refuses it) if none."""
    if not _WIRE.fullmatch(name):
        return name
    base, _, version = name.rpartition("__")
    return f"{base}@{version}"


class PlannerError(TenantgateError):
    """The model provider failed: an error answer, a timeout or a response we could not read."""

    code = "planner_error"

    def __init__(self, message: str, *, reason: str, status: int | None = None) -> None:
        self.reason = reason
        super().__init__(message, reason=reason, **({"status": status} if status is not None else {}))


class VendorNotEligible(PermissionDenied):
    """This tenant's policy does not let the planner's vendor receive its data; nothing was sent."""

    code = "vendor_not_eligible"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens the provider says it used for one call (zero for the scripted planner)."""

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """A tool call the model proposed. ``arguments`` is None when they could not be read (``error`` says why).

    ``id`` is the provider's call id, echoed back with the result; ``tool`` the tenantgate name
    (or whatever the model sent, if it names no tool).
    """

    id: str
    tool: str
    arguments: dict[str, Any] | None
    error: str | None = None
    wire: Any = None  # the provider's own rendering of the call, replayed verbatim in the next request


@dataclass(frozen=True, slots=True)
class Plan:
    """A planner's answer: tool calls to run, or (no calls) the reply to the user."""

    calls: tuple[PlannedCall, ...]
    text: str | None
    usage: Usage
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class UserTurn:
    text: str


@dataclass(frozen=True, slots=True)
class AssistantTurn:
    text: str | None
    calls: tuple[PlannedCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolResultItem:
    """One result, already wrapped in its data block (see ``_prompt.data_block``)."""

    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ToolResults:
    results: tuple[ToolResultItem, ...]


Turn = UserTurn | AssistantTurn | ToolResults


@dataclass(slots=True)
class Conversation:
    """The fixed, layered system prompt and the turns so far. Tools can only ever add ToolResults."""

    system: str
    turns: list[Turn] = field(default_factory=list)

    @property
    def steps_this_run(self) -> int:
        """Planner answers since the last user message."""
        count = 0
        for turn in reversed(self.turns):
            if isinstance(turn, UserTurn):
                break
            count += isinstance(turn, AssistantTurn)
        return count


class Planner(Protocol):
    """Proposes the next step. Raises :class:`PlannerError` for provider faults; never runs anything."""

    name: str
    model: str | None
    vendor: str | None  # who receives the conversation; None: nobody outside this process

    async def plan(self, conversation: Conversation, tools: Sequence[ToolSpec]) -> Plan: ...

    async def aclose(self) -> None: ...
