"""A tenant's policy compiled for the hot path: dict lookups and plain predicates, no parsing."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.gate._compliance import ComplianceProfile
from tenantgate.gate._conditions import Predicate, compile_condition
from tenantgate.gate._policy import WILDCARD, Forbid, Grant, PlannerChoice, PolicyDocument
from tenantgate.tools import ToolRegistry, ToolSpec

__all__ = ["CompiledRule", "RuleSet", "Switches", "TenantView", "compile_policy"]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    roles: frozenset[Role] | None
    kinds: frozenset[PrincipalKind]
    principals: frozenset[uuid.UUID] | None
    predicates: tuple[Predicate, ...]
    confirm: bool

    def covers(self, ctx: TenantContext) -> bool:
        """Does the rule name this caller (its kind, its roles, the principal it is or acts for)?"""
        if self.roles is not None and self.roles.isdisjoint(ctx.held):
            return False
        if ctx.kind is PrincipalKind.AI_EXECUTION:
            # An agent is covered only where the principal it acts for would be too.
            if PrincipalKind.AI_EXECUTION not in self.kinds or ctx.acting_for_kind not in self.kinds:
                return False
        elif ctx.kind not in self.kinds:
            return False
        return self.principals is None or ctx.root_principal in self.principals


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One tool's rules, indexed so a decision looks only at rules that can name the caller."""

    general: tuple[CompiledRule, ...] = ()
    by_principal: Mapping[uuid.UUID, tuple[CompiledRule, ...]] = field(default_factory=dict)

    def for_caller(self, ctx: TenantContext) -> tuple[CompiledRule, ...]:
        named = self.by_principal.get(ctx.root_principal)
        return self.general + named if named else self.general

    def __bool__(self) -> bool:
        return bool(self.general or self.by_principal)


_NO_RULES = RuleSet()


@dataclass(frozen=True, slots=True)
class Switches:
    """Kill switches in force at one scope (the platform, or one tenant)."""

    all: bool = False
    ai: bool = False  # every AI execution (a tenant's, or every tenant's at platform scope)
    tools: frozenset[str] = frozenset()
    integrations: frozenset[str] = frozenset()

    def blocks(self, ctx: TenantContext, spec: ToolSpec) -> str | None:
        if self.all:
            return "all tools"
        if self.ai and ctx.kind is PrincipalKind.AI_EXECUTION:
            return "all AI execution"
        if spec.name in self.tools:
            return f"tool {spec.name}"
        if spec.integration is not None and spec.integration in self.integrations:
            return f"integration {spec.integration}"
        return None


@dataclass(frozen=True, slots=True)
class TenantView:
    """Everything the gate needs about one tenant, at one policy version."""

    tenant_id: uuid.UUID
    version: int
    visible: frozenset[str]
    grants: Mapping[str, RuleSet]
    forbids: Mapping[str, RuleSet]

    def grants_for(self, tool: str) -> RuleSet:
        return self.grants.get(tool, _NO_RULES)

    def forbids_for(self, tool: str) -> RuleSet:
        return self.forbids.get(tool, _NO_RULES)

    compliance: ComplianceProfile
    switches: Switches
    # The tenant's egress domain lists and eligible model vendors, as the policy states them.
    egress_allow: frozenset[str] = frozenset()
    egress_deny: frozenset[str] = frozenset()
    ai_vendors: frozenset[str] = frozenset()
    ai_planner: PlannerChoice | None = None


def _compile(rule: Grant | Forbid) -> CompiledRule:
    return CompiledRule(
        id=rule.id,
        roles=frozenset(rule.roles) if rule.roles is not None else None,
        kinds=frozenset(rule.kinds),
        principals=frozenset(rule.principals) if rule.principals is not None else None,
        predicates=tuple(compile_condition(c) for c in rule.when),
        confirm=rule.confirm if isinstance(rule, Grant) else False,
    )


def _index(rules: list[Grant] | list[Forbid], names: frozenset[str]) -> Mapping[str, RuleSet]:
    general: dict[str, list[CompiledRule]] = {}
    named: dict[str, dict[uuid.UUID, list[CompiledRule]]] = {}
    for rule in rules:
        compiled = _compile(rule)
        targets = names if WILDCARD in rule.tools else [t for t in rule.tools if t in names]
        for name in targets:
            if compiled.principals is None:
                general.setdefault(name, []).append(compiled)
            else:
                for principal in compiled.principals:
                    named.setdefault(name, {}).setdefault(principal, []).append(compiled)
    return MappingProxyType(
        {
            name: RuleSet(
                tuple(general.get(name, ())),
                MappingProxyType({p: tuple(found) for p, found in named.get(name, {}).items()}),
            )
            for name in general.keys() | named.keys()
        }
    )


def compile_policy(
    tenant_id: uuid.UUID,
    version: int,
    document: PolicyDocument,
    registry: ToolRegistry,
    *,
    compliance: ComplianceProfile,
    switches: Switches,
) -> TenantView:
    visible = document.installed_tools(registry)
    return TenantView(
        tenant_id=tenant_id,
        version=version,
        visible=visible,
        grants=_index(document.grants, visible),
        # Forbids bind whatever exists, installed or not.
        forbids=_index(document.forbids, frozenset(t.name for t in registry)),
        compliance=compliance,
        switches=switches,
        egress_allow=frozenset(document.egress.allow_domains),
        egress_deny=frozenset(document.egress.deny_domains),
        ai_vendors=frozenset(document.ai.vendors),
        ai_planner=document.ai.planner,
    )
