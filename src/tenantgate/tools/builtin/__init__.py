"""The built-in tools of both modes, one module per tool family, and the packages tenants install.

Each ``_family.py`` module exports a factory that builds its tools (and packages) from the
services they need; the installation registers them for the deployment mode, so tools that
need a local capability exist only in ``self_hosted``.
"""

from tenantgate.tools.builtin._api import api_tools
from tenantgate.tools.builtin._cron import cron_tools
from tenantgate.tools.builtin._files import workspace_tools
from tenantgate.tools.builtin._heartbeat import heartbeat_tools
from tenantgate.tools.builtin._local import self_hosted_tools
from tenantgate.tools.builtin._memory import memory_tools
from tenantgate.tools.builtin._message import MESSAGE_PACKAGE, MessageArgs, MessageSent, Outbox, message_tools
from tenantgate.tools.builtin._provider import ProviderUrls, ToolFailed
from tenantgate.tools.builtin._r8r import judge_workflow, r8r_tools
from tenantgate.tools.builtin._sandbox import INSTALL_HINT, Limits, Sandbox, SandboxResult
from tenantgate.tools.builtin._sheets import sheets_tools
from tenantgate.tools.builtin._shell import SandboxUnavailable, shell_tools
from tenantgate.tools.builtin._skills import skill_tools
from tenantgate.tools.builtin._web import BraveSearch, SearchHit, SearchProvider, web_tools
from tenantgate.tools.builtin._whatsapp import REPLY_TOOL, whatsapp_tools
from tenantgate.tools.builtin._workspace import Entry, Listing, Workspace, Workspaces

__all__ = [
    "INSTALL_HINT",
    "MESSAGE_PACKAGE",
    "REPLY_TOOL",
    "BraveSearch",
    "Entry",
    "Limits",
    "Listing",
    "MessageArgs",
    "MessageSent",
    "Outbox",
    "ProviderUrls",
    "Sandbox",
    "SandboxResult",
    "SandboxUnavailable",
    "SearchHit",
    "SearchProvider",
    "ToolFailed",
    "Workspace",
    "Workspaces",
    "api_tools",
    "cron_tools",
    "heartbeat_tools",
    "judge_workflow",
    "memory_tools",
    "message_tools",
    "r8r_tools",
    "self_hosted_tools",
    "sheets_tools",
    "shell_tools",
    "skill_tools",
    "web_tools",
    "whatsapp_tools",
    "workspace_tools",
]
