"""The tools that exist in this process, for its deployment mode, and the packages tenants install.

In ``saas`` a tool that needs a local capability cannot be registered: ``register``
raises, for built-in and plugin tools alike. Built-ins are offered with
``register_available``, which leaves such tools out and remembers that it did, so the
gate can say *capability denied* rather than *unknown tool* when a planner asks for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tenantgate.context import DeploymentMode
from tenantgate.errors import CapabilityDenied, ConfigurationError
from tenantgate.tools._spec import Tool, ToolSpec

__all__ = ["ToolPackage", "ToolRegistry"]

_PACKAGE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True, slots=True)
class ToolPackage:
    """A set of tools a tenant installs as one (``whatsapp``, ``web``), with its own allowlist."""

    name: str
    description: str
    tools: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _PACKAGE_NAME.fullmatch(self.name):
            raise ValueError(f"package name {self.name!r}: lowercase letters, digits, - and _")


class ToolRegistry:
    """Built once per process from the deployment mode; read-only while serving."""

    def __init__(self, mode: DeploymentMode) -> None:
        self.mode = mode
        self._tools: dict[str, Tool] = {}
        self._excluded: dict[str, ToolSpec] = {}
        self._packages: dict[str, ToolPackage] = {}

    def register(self, tool: Tool) -> None:
        """Add a tool; in ``saas`` one needing a local capability raises :class:`CapabilityDenied`."""
        spec = tool.spec
        if self.mode is DeploymentMode.SAAS and spec.local_capabilities:
            needs = ", ".join(sorted(c.value for c in spec.local_capabilities))
            raise CapabilityDenied(
                f"Tool {spec.name} needs {needs}, which saas mode never grants: it cannot be registered. "
                "Run it in self_hosted mode, or remove the capability from the tool."
            )
        if spec.name in self._tools or spec.name in self._excluded:
            raise ConfigurationError(f"A tool named {spec.name} is already registered.")
        self._tools[spec.name] = tool

    def register_available(self, tools: Iterable[Tool]) -> None:
        """Register every tool this mode allows; leave out (and remember) the rest."""
        for tool in tools:
            if self.mode is DeploymentMode.SAAS and tool.spec.local_capabilities:
                self._excluded[tool.spec.name] = tool.spec
            else:
                self.register(tool)

    def add_package(self, package: ToolPackage) -> None:
        unknown = [t for t in package.tools if t not in self._tools and t not in self._excluded]
        if unknown:
            raise ConfigurationError(f"Package {package.name} names unregistered tools: {unknown}.")
        if package.name in self._packages:
            raise ConfigurationError(f"A package named {package.name} is already registered.")
        self._packages[package.name] = package

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def excluded(self, name: str) -> ToolSpec | None:
        """The spec of a known tool this mode left out, if ``name`` is one."""
        return self._excluded.get(name)

    def package_tools(self, package: str) -> tuple[str, ...]:
        """The package's tools that exist in this mode."""
        found = self._packages.get(package)
        return tuple(t for t in found.tools if t in self._tools) if found is not None else ()

    @property
    def packages(self) -> Mapping[str, ToolPackage]:
        return MappingProxyType(self._packages)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)
