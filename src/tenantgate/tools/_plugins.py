"""Operators' own tools, loaded by reference (``package.module:attribute``) at start-up.

They pass through the same registry as built-ins: in ``saas`` a plugin tool that needs a
local capability stops the process from starting, with the registry's message.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from tenantgate.errors import CapabilityDenied, ConfigurationError
from tenantgate.tools._registry import ToolPackage, ToolRegistry
from tenantgate.tools._spec import Tool

__all__ = ["load_plugins"]


def _resolve(ref: str) -> object:
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"Plugin reference {ref!r} must look like package.module:attribute.")
    try:
        found: object = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"Cannot load plugin {ref!r}: {exc}") from exc
    return found


def load_plugins(registry: ToolRegistry, refs: Iterable[str]) -> None:
    """Register every Tool and ToolPackage the references name (an attribute may be a list of them)."""
    for ref in refs:
        found = _resolve(ref)
        items = list(found) if isinstance(found, list | tuple) else [found]
        tools = [item for item in items if isinstance(item, Tool)]
        packages = [item for item in items if isinstance(item, ToolPackage)]
        if len(tools) + len(packages) != len(items):
            raise ConfigurationError(f"Plugin {ref!r} must name Tools and ToolPackages only.")
        try:
            for tool in tools:
                registry.register(tool)
        except CapabilityDenied as exc:
            raise ConfigurationError(f"Plugin {ref!r} refused: {exc.message}") from exc
        for package in packages:
            registry.add_package(package)
