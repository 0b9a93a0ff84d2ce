"""The scripted planner: replays a declared sequence of tool calls and replies. Sends nothing anywhere.

For tests, the demo, and operators who want deterministic flows. Each run replays the
script from its first step; a script that runs out ends the run with ``DONE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tenantgate.agent._planner import Conversation, Plan, PlannedCall, Usage
from tenantgate.gate import ScriptStep
from tenantgate.tools import ToolSpec

__all__ = ["DONE", "NO_MODEL", "ScriptedPlanner"]

DONE = "Done."
NO_MODEL = (
    "No model is configured for this tenant, so I cannot plan anything. An administrator can choose "
    "a planner in the tenant policy (ai.planner) or set TENANTGATE_AGENT_PLANNER."
)


class ScriptedPlanner:
    """Step *n* of every run answers with ``script[n]``."""

    name = "scripted"
    model: str | None = None
    vendor: str | None = None

    def __init__(self, script: Sequence[ScriptStep]) -> None:
        self._script = tuple(script)

    async def plan(self, conversation: Conversation, tools: Sequence[ToolSpec]) -> Plan:
        index = conversation.steps_this_run
        if index >= len(self._script):
            return Plan(calls=(), text=DONE if self._script else NO_MODEL, usage=Usage(), stop_reason="end_turn")
        step = self._script[index]
        if step.reply is not None:
            return Plan(calls=(), text=step.reply, usage=Usage(), stop_reason="end_turn")
        calls = tuple(
            PlannedCall(f"call_{index}_{n}", str(c["tool"]), dict(c.get("arguments", {})))
            for n, c in enumerate(step.calls)
        )
        return Plan(calls=calls, text=None, usage=Usage(), stop_reason="tool_use")

    async def aclose(self) -> None:
        return None
