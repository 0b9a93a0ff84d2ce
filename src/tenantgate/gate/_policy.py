"""A tenant's policy as data: installed packages, grants and forbids. Validated when written.

Deny by default: a call is allowed only if a grant covers the tool, the caller and the
arguments, and no forbid matches. Service accounts are covered only by grants that name
them (by id, or the ``service_account`` kind): a service account has only its scopes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tenantgate.context import PrincipalKind, Role
from tenantgate.egress import validate_domain_pattern
from tenantgate.errors import ConfigurationError, InvalidInput
from tenantgate.gate._conditions import ArgCondition
from tenantgate.tools import ToolRegistry

__all__ = [
    "WILDCARD",
    "AiRules",
    "EgressRules",
    "Forbid",
    "Grant",
    "Installation",
    "PlannerChoice",
    "PolicyDocument",
    "ScriptStep",
]

WILDCARD = "*"
_RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_HUMAN_AND_AGENTS = [PrincipalKind.USER, PrincipalKind.AI_EXECUTION]
_ALL_KINDS = [PrincipalKind.USER, PrincipalKind.AI_EXECUTION, PrincipalKind.SERVICE_ACCOUNT]


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_RULE_ID)
    tools: list[str] = Field(min_length=1, max_length=500)
    roles: list[Role] | None = Field(
        None, min_length=1, description="Caller must hold one of these (or a stronger role)."
    )
    principals: list[uuid.UUID] | None = Field(
        None, min_length=1, description="Only these principals (and their agents)."
    )
    when: list[ArgCondition] = Field(default_factory=list, max_length=50)


class Grant(_Rule):
    """Allows the tools to the callers it names, when every condition holds."""

    kinds: list[PrincipalKind] = Field(default_factory=lambda: list(_HUMAN_AND_AGENTS), min_length=1)
    confirm: bool = Field(False, description="Require a human confirmation even if the tool is not high-impact.")


class Forbid(_Rule):
    """Denies the tools to the callers it names when every condition holds. Any forbid wins."""

    kinds: list[PrincipalKind] = Field(default_factory=lambda: list(_ALL_KINDS), min_length=1)


class Installation(BaseModel):
    """A platform package the tenant installed, optionally narrowed to some of its tools."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    package: str = Field(min_length=1, max_length=63)
    tools: list[str] | None = Field(None, description="Allowlist within the package; all of it when absent.")


class EgressRules(BaseModel):
    """Where this tenant's tools may send HTTP: exact hosts or ``*.suffix``. Deny wins; a non-empty allow list
    refuses everything it does not name. Applied by the egress door before any name is resolved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow_domains: list[str] = Field(default_factory=list, max_length=500)
    deny_domains: list[str] = Field(default_factory=list, max_length=500)


class ScriptStep(BaseModel):
    """One step of a scripted planner: tool calls to propose, or the final reply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls: list[dict[str, Any]] = Field(default_factory=list, max_length=20, description="[{tool, arguments}]")
    reply: str | None = Field(None, max_length=20_000)

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptStep:
        if bool(self.calls) == (self.reply is not None):
            raise ValueError("a script step has either calls or a reply")
        for call in self.calls:
            if set(call) - {"tool", "arguments"} or not isinstance(call.get("tool"), str):
                raise ValueError("a scripted call is {tool: name, arguments: {...}}")
            if not isinstance(call.get("arguments", {}), dict):
                raise ValueError("scripted call arguments must be an object")
        return self


class PlannerChoice(BaseModel):
    """The tenant's model: provider, model, base URL and the *name* of the tenant credential with its key.

    ``vendor`` is what eligibility is checked against (default: the provider's name); an
    OpenAI-compatible server run by someone else names its own vendor here.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: Literal["openai", "anthropic", "scripted"]
    model: str | None = Field(None, min_length=1, max_length=200)
    base_url: str | None = Field(None, max_length=500)
    credential: str | None = Field(None, min_length=1, max_length=100)
    vendor: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    instructions: str = Field("", max_length=20_000, description="The tenant's prompt layer, below the platform's.")
    max_tokens: int = Field(1024, ge=1, le=64_000)
    script: list[ScriptStep] = Field(default_factory=list, max_length=100)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
                raise ValueError("base_url must be an http(s) URL without query or fragment")
        return value

    @property
    def vendor_name(self) -> str | None:
        """The vendor that would receive data; None for the scripted planner, which sends nothing."""
        return None if self.provider == "scripted" else (self.vendor or self.provider)


class AiRules(BaseModel):
    """Which model providers may receive this tenant's data (seed 003, vendor eligibility), and its planner.

    Empty means none: a tenant opts in to each external provider explicitly. The scripted planner
    sends nothing anywhere and needs no entry. ``planner`` unset: the platform's default planner.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    vendors: list[str] = Field(default_factory=list, max_length=50)
    planner: PlannerChoice | None = None


class PolicyDocument(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    packages: list[Installation] = Field(default_factory=list, max_length=200)
    grants: list[Grant] = Field(default_factory=list, max_length=1000)
    forbids: list[Forbid] = Field(default_factory=list, max_length=1000)
    egress: EgressRules = Field(default_factory=EgressRules)
    ai: AiRules = Field(default_factory=AiRules)

    def installed_tools(self, registry: ToolRegistry) -> frozenset[str]:
        """The tools this tenant can see in this mode: installed packages, narrowed, present here."""
        visible: set[str] = set()
        for inst in self.packages:
            offered = set(registry.package_tools(inst.package))
            visible |= offered if inst.tools is None else offered & set(inst.tools)
        return frozenset(visible)

    def check(self, registry: ToolRegistry) -> None:
        """Refuse a policy that names what does not exist, all problems listed at once."""
        problems: list[str] = []
        seen_packages: set[str] = set()
        for inst in self.packages:
            package = registry.packages.get(inst.package)
            if package is None:
                problems.append(f"unknown package {inst.package!r}")
                continue
            if inst.package in seen_packages:
                problems.append(f"package {inst.package!r} is installed twice")
            seen_packages.add(inst.package)
            for name in inst.tools or ():
                if name not in package.tools:
                    problems.append(f"package {inst.package!r} has no tool {name!r}")
        installed = self.installed_tools(registry)
        ids: set[str] = set()
        for rule in [*self.grants, *self.forbids]:
            if rule.id in ids:
                problems.append(f"rule id {rule.id!r} is used twice")
            ids.add(rule.id)
            problems.extend(_tool_problems(rule, registry, installed))
        for pattern in [*self.egress.allow_domains, *self.egress.deny_domains]:
            try:
                validate_domain_pattern(pattern)
            except ConfigurationError as exc:
                problems.append(exc.message)
        if problems:
            raise InvalidInput("The policy was not saved: " + "; ".join(problems) + ".", problems=problems)


def _tool_problems(rule: _Rule, registry: ToolRegistry, installed: Iterable[str]) -> list[str]:
    found: list[str] = []
    installed_set = set(installed)
    for name in rule.tools:
        if name == WILDCARD:
            continue
        if registry.excluded(name) is not None:
            found.append(f"rule {rule.id!r}: tool {name!r} cannot exist in {registry.mode.value} mode")
        elif name not in registry:
            found.append(f"rule {rule.id!r}: unknown tool {name!r}")
        elif name not in installed_set and isinstance(rule, Grant):
            found.append(f"rule {rule.id!r}: tool {name!r} is not in an installed package")
    return found
