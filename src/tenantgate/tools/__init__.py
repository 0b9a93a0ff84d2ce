"""Tool specs, the mode-aware registry and the executor."""

from tenantgate.tools._executor import Executor, Outcome, ToolResult
from tenantgate.tools._plugins import load_plugins
from tenantgate.tools._registry import ToolPackage, ToolRegistry
from tenantgate.tools._resources import (
    ArtifactSource,
    Credential,
    CredentialSource,
    HttpSource,
    ToolCall,
    ToolResources,
    ToolUnavailable,
)
from tenantgate.tools._spec import (
    LOCAL_CAPABILITIES,
    TOOL_NAME,
    Capability,
    Tool,
    ToolEffect,
    ToolHandler,
    ToolSpec,
    tool,
)

__all__ = [
    "LOCAL_CAPABILITIES",
    "TOOL_NAME",
    "ArtifactSource",
    "Capability",
    "Credential",
    "CredentialSource",
    "Executor",
    "HttpSource",
    "Outcome",
    "Tool",
    "ToolCall",
    "ToolEffect",
    "ToolHandler",
    "ToolPackage",
    "ToolRegistry",
    "ToolResources",
    "ToolResult",
    "ToolSpec",
    "ToolUnavailable",
    "load_plugins",
    "tool",
]
