"""The agent runtime: sessions, runs, the turn loop and the planners (OpenAI-compatible, Anthropic, scripted).

An inbound message starts a *run*: the planner proposes tool calls, each is schema-checked,
decided by the gate and executed through the boundary as an AI execution context acting for
the caller, and its result goes back to the planner only as a marked, untrusted data block.
"""

from tenantgate.agent._anthropic import ANTHROPIC_VERSION, AnthropicPlanner
from tenantgate.agent._choice import PlannerFactory, PlannerHttp, ProviderDefaults
from tenantgate.agent._live import LiveRun
from tenantgate.agent._openai import OpenAIPlanner
from tenantgate.agent._planner import (
    AssistantTurn,
    Conversation,
    Plan,
    PlannedCall,
    Planner,
    PlannerError,
    ToolResultItem,
    ToolResults,
    Usage,
    UserTurn,
    VendorNotEligible,
    tool_from_wire,
    wire_name,
)
from tenantgate.agent._prompt import PLATFORM_PROMPT, data_block, neutralise, system_prompt
from tenantgate.agent._runs import RunEvent, RunInfo, RunStatus, RunStore
from tenantgate.agent._scripted import ScriptedPlanner
from tenantgate.agent._sessions import MessageInfo, SessionInfo, SessionStore
from tenantgate.agent._turn import AgentRuntime, RuntimeLimits, TurnResult

__all__ = [
    "ANTHROPIC_VERSION",
    "PLATFORM_PROMPT",
    "AgentRuntime",
    "AnthropicPlanner",
    "AssistantTurn",
    "Conversation",
    "LiveRun",
    "MessageInfo",
    "OpenAIPlanner",
    "Plan",
    "PlannedCall",
    "Planner",
    "PlannerError",
    "PlannerFactory",
    "PlannerHttp",
    "ProviderDefaults",
    "RunEvent",
    "RunInfo",
    "RunStatus",
    "RunStore",
    "RuntimeLimits",
    "ScriptedPlanner",
    "SessionInfo",
    "SessionStore",
    "ToolResultItem",
    "ToolResults",
    "TurnResult",
    "Usage",
    "UserTurn",
    "VendorNotEligible",
    "data_block",
    "neutralise",
    "system_prompt",
    "tool_from_wire",
    "wire_name",
]
