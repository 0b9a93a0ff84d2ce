"""The policy gate: ``decide(ctx, call) -> Decision``. Deny by default, any forbid wins, never raises.

The order of checks is the order of the questions a reviewer would ask: does the tool
exist here, is anything switched off, did the tenant install it, does the tenant's
compliance mode allow it, are the arguments valid, does a forbid match, does the caller
hold the role the tool needs, does a grant cover caller and arguments, is there budget,
and does a human have to confirm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from tenantgate.context import TenantContext
from tenantgate.gate._compiled import CompiledRule, Switches, TenantView
from tenantgate.gate._conditions import ConditionError
from tenantgate.gate._decision import Code, Decision, Verdict
from tenantgate.logs import get_logger
from tenantgate.tools import Tool, ToolRegistry, ToolSpec
from tenantgate.tracing import span

__all__ = ["Gate", "PolicySource", "ProposedCall", "QuotaHook", "args_digest", "evaluate", "offerable"]

_log = get_logger("tenantgate.gate")


@dataclass(frozen=True, slots=True)
class ProposedCall:
    """What a planner (or an API client) asks for. Untrusted in every field."""

    tool: str
    arguments: Mapping[str, Any]


class PolicySource(Protocol):
    async def view(self, ctx: TenantContext) -> TenantView: ...

    async def platform(self) -> Switches: ...


# Filled in by the quotas issue: None to pass, or a deny decision (quota_exceeded).
QuotaHook = Callable[[TenantContext, ToolSpec, Decision], Awaitable[Decision | None]]


def args_digest(arguments: Mapping[str, Any]) -> str:
    """A stable digest of validated arguments: what a confirmation is bound to."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _deny(call: ProposedCall, code: Code, reason: str, **extra: Any) -> Decision:
    return Decision(Verdict.DENY, code, reason, call.tool, **extra)


def _matching(
    rules: tuple[CompiledRule, ...], ctx: TenantContext, arguments: dict[str, Any]
) -> tuple[list[CompiledRule], list[str]]:
    """Rules that cover the caller and whose conditions all hold; and ids of rules that errored."""
    matched: list[CompiledRule] = []
    errors: list[str] = []
    for rule in rules:
        if not rule.covers(ctx):
            continue
        try:
            if all(predicate(arguments) for predicate in rule.predicates):
                matched.append(rule)
        except ConditionError as exc:
            errors.append(f"{rule.id}: {exc}")
    return matched, errors


def evaluate(
    ctx: TenantContext,
    call: ProposedCall,
    *,
    registry: ToolRegistry,
    view: TenantView,
    platform: Switches,
    confirmed: bool = False,
    channel: bool = False,
) -> Decision:
    """The whole decision except quotas, in memory. Pure: same inputs, same decision.

    ``confirmed`` says the caller presents a confirmation: a call that needs one is then
    allowed *on condition* (``needed_confirmation``) that the boundary redeems it.
    ``channel`` says platform channel code proposes the call (not a planner, not an API
    client): only then may a ``channel_only`` tool be decided on at all.
    """
    tool: Tool | None = registry.get(call.tool)
    if tool is None:
        if registry.excluded(call.tool) is not None:
            return _deny(
                call, Code.CAPABILITY_DENIED, f"{call.tool} needs a capability {registry.mode.value} mode never grants."
            )
        return _deny(call, Code.UNKNOWN_TOOL, f"No tool named {call.tool!r} exists in {registry.mode.value} mode.")
    spec = tool.spec

    for scope, switches in (("platform", platform), ("tenant", view.switches)):
        blocked = switches.blocks(ctx, spec)
        if blocked is not None:
            return _deny(call, Code.KILL_SWITCH, f"A {scope} kill switch is on for {blocked}.")

    if spec.channel_only and not channel:
        reason = f"{spec.name} is sent by the channel itself, to its own conversation; no caller proposes it."
        return _deny(call, Code.CHANNEL_ONLY, reason)

    if spec.name not in view.visible:
        return _deny(call, Code.NOT_GRANTED, f"{spec.name} is not in any package this tenant installed.")

    profile = view.compliance
    if spec.integration in profile.denied_integrations or spec.capabilities & profile.denied_capabilities:
        return _deny(
            call, Code.COMPLIANCE_DENIED, f"{spec.name} is not allowed in {profile.mode.value} compliance mode."
        )

    unknown = [str(k)[:100] for k in call.arguments if k not in spec.argument_names]
    if unknown:
        # Whatever the tool's model would do with them, a planner does not get to add parameters.
        extra = tuple({"loc": [name], "msg": "unknown argument", "type": "extra_forbidden"} for name in unknown)
        return _deny(call, Code.INVALID_ARGUMENTS, f"Unknown arguments for {spec.name}: {unknown}.", details=extra)
    try:
        arguments = spec.arguments.model_validate(dict(call.arguments)).model_dump(mode="json")
    except ValidationError as exc:
        details = tuple({"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors())
        return _deny(call, Code.INVALID_ARGUMENTS, f"Arguments do not match {spec.name}'s schema.", details=details)
    except (TypeError, ValueError) as exc:
        return _deny(call, Code.INVALID_ARGUMENTS, f"Arguments could not be read: {exc}")
    forbids, forbid_errors = _matching(view.forbids_for(spec.name).for_caller(ctx), ctx, arguments)
    if forbids or forbid_errors:
        # A forbid that cannot be evaluated denies too: failing closed beats a skipped prohibition.
        return _deny(call, Code.POLICY_DENIED, "A forbid rule of this tenant's policy matches.",
                     rule_ids=tuple(r.id for r in forbids), errors=tuple(forbid_errors))  # fmt: skip

    if spec.required_role not in ctx.held:
        return _deny(call, Code.ROLE_REQUIRED, f"{spec.name} needs the {spec.required_role.value} role or higher.")

    candidates = view.grants_for(spec.name).for_caller(ctx)
    grants, grant_errors = _matching(candidates, ctx, arguments)
    if not grants:
        named = [r.id for r in candidates if r.covers(ctx)]
        if named:
            reason = "A grant covers this tool for the caller, but not these arguments."
            return _deny(call, Code.ARGUMENT_DENIED, reason, rule_ids=tuple(named), errors=tuple(grant_errors))
        return _deny(call, Code.NOT_GRANTED, f"No grant of this tenant's policy lets this caller use {spec.name}.")

    rule_ids = tuple(r.id for r in grants)
    needs_human = spec.high_impact or spec.effect in profile.confirm_effects or any(r.confirm for r in grants)
    if needs_human:
        # A confirmation is bound to exactly these arguments: only then is the digest needed.
        digest = args_digest(arguments)
        if confirmed:
            return Decision(Verdict.ALLOW, Code.ALLOWED, "Allowed by policy, with a human's confirmation.", spec.name,
                            rule_ids, arguments, digest, tuple(grant_errors), needed_confirmation=True)  # fmt: skip
        return Decision(Verdict.CONFIRM, Code.CONFIRMATION_REQUIRED, f"{spec.name} needs a human's confirmation.",
                        spec.name, rule_ids, arguments, digest, tuple(grant_errors))  # fmt: skip
    return Decision(Verdict.ALLOW, Code.ALLOWED, "Allowed by policy.", spec.name, rule_ids, arguments, None,
                    tuple(grant_errors))  # fmt: skip


def offerable(ctx: TenantContext, spec: ToolSpec, *, view: TenantView, platform: Switches) -> bool:
    """Could this caller use the tool at all (with some arguments)? The checks of :func:`evaluate` that need none.

    For listing tools to a client (MCP ``tools/list``): a tool left out here would be denied
    whatever the arguments; one offered may still be denied by a condition on its arguments.
    """
    if any(switches.blocks(ctx, spec) is not None for switches in (platform, view.switches)):
        return False
    if spec.channel_only or spec.name not in view.visible or spec.required_role not in ctx.held:
        return False
    profile = view.compliance
    if spec.integration in profile.denied_integrations or spec.capabilities & profile.denied_capabilities:
        return False
    if any(not r.predicates and r.covers(ctx) for r in view.forbids_for(spec.name).for_caller(ctx)):
        return False  # an unconditional forbid names the caller
    return any(r.covers(ctx) for r in view.grants_for(spec.name).for_caller(ctx))


class Gate:
    """Decides tool calls for tenants, from the registry and each tenant's compiled policy."""

    def __init__(self, *, registry: ToolRegistry, policies: PolicySource, quota: QuotaHook | None = None) -> None:
        self.registry = registry
        self._policies = policies
        self._quota = quota

    async def offered(self, ctx: TenantContext) -> list[ToolSpec]:
        """The tools this caller could use in this mode under its tenant's policy, by name.

        Raises (``PolicyUnavailable``) when the policy cannot be loaded: nothing is offered then.
        """
        view = await self._policies.view(ctx)
        platform = await self._policies.platform()
        found = (self.registry.get(name) for name in sorted(view.visible))
        return [t.spec for t in found if t is not None and offerable(ctx, t.spec, view=view, platform=platform)]

    async def decide(
        self, ctx: TenantContext, call: ProposedCall, *, confirmed: bool = False, channel: bool = False
    ) -> Decision:
        """Total: every failure inside becomes a deny, never an exception."""
        with span("tenantgate.gate", ctx, tool=call.tool) as current:
            decision = await self._decide(ctx, call, confirmed=confirmed, channel=channel)
            if current is not None:
                current.set_attribute("tenantgate.verdict", decision.verdict.value)
                current.set_attribute("tenantgate.code", decision.code.value)
            return decision

    async def _decide(self, ctx: TenantContext, call: ProposedCall, *, confirmed: bool, channel: bool) -> Decision:
        try:
            try:
                view = await self._policies.view(ctx)
                platform = await self._policies.platform()
            except Exception as exc:  # noqa: BLE001 - any fault loading policy must deny, not allow or crash
                _log.warning("gate.policy_unavailable", tenant_id=str(ctx.tenant_id), error=type(exc).__name__)
                return _deny(call, Code.POLICY_UNAVAILABLE, "The policy could not be loaded; denied until it can.")
            decision = evaluate(
                ctx, call, registry=self.registry, view=view, platform=platform, confirmed=confirmed, channel=channel
            )
            if decision.verdict is Verdict.ALLOW and self._quota is not None:
                tool = self.registry.get(call.tool)
                assert tool is not None
                refused = await self._quota(ctx, tool.spec, decision)
                if refused is not None:
                    return refused
            return decision
        except Exception as exc:  # noqa: BLE001 - the gate is total: a bug here denies
            _log.exception("gate.error", tenant_id=str(ctx.tenant_id), tool=call.tool[:100])
            return _deny(call, Code.GATE_ERROR, f"The gate failed to decide ({type(exc).__name__}); denied.")
