"""The SaaS-safe API tools as one list: what both modes register, with their packages."""

from __future__ import annotations

from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._spec import Tool
from tenantgate.tools.builtin._provider import ProviderUrls
from tenantgate.tools.builtin._r8r import r8r_tools
from tenantgate.tools.builtin._sheets import sheets_tools
from tenantgate.tools.builtin._web import web_tools
from tenantgate.tools.builtin._whatsapp import whatsapp_tools

__all__ = ["api_tools"]


def api_tools(urls: ProviderUrls) -> list[Tool | ToolPackage]:
    """web_fetch, web_search, whatsapp_send, google_sheets and r8r, and the packages web, whatsapp,
    google_sheets and r8r. None needs a local capability: all exist in both modes."""
    return [*web_tools(urls), *whatsapp_tools(urls), *sheets_tools(urls), *r8r_tools(urls)]
