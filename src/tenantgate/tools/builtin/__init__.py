"""The built-in tools of both modes, one module per tool family, and the packages tenants install.

Each ``_family.py`` module exports a factory that builds its tools (and packages) from the
services they need; the installation registers them for the deployment mode, so tools that
need a local capability exist only in ``self_hosted``.
"""

from tenantgate.tools.builtin._cron import cron_tools
from tenantgate.tools.builtin._heartbeat import heartbeat_tools
from tenantgate.tools.builtin._memory import memory_tools
from tenantgate.tools.builtin._skills import skill_tools

__all__ = ["cron_tools", "heartbeat_tools", "memory_tools", "skill_tools"]
