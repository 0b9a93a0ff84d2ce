"""The gate's decisions, in memory: every code, every rule shape, the order that matters."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.gate import (
    PROFILES,
    Code,
    ComplianceMode,
    Decision,
    Gate,
    PolicyDocument,
    ProposedCall,
    Switches,
    TenantView,
    Verdict,
    compile_policy,
    evaluate,
)
from tenantgate.tools import ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool
from tests import fixture_tools

TENANT = uuid.uuid4()
SAAS = fixture_tools.registry(DeploymentMode.SAAS)
CONTACT = "+4930123456"


def ctx(*roles: Role, kind: PrincipalKind = PrincipalKind.USER, principal: uuid.UUID | None = None) -> TenantContext:
    return TenantContext(
        tenant_id=TENANT,
        principal_id=principal or uuid.uuid4(),
        kind=kind,
        roles=frozenset(roles or {Role.MEMBER}),
        mode=DeploymentMode.SAAS,
        request_id="t",
    )


def view(
    document: dict[str, Any],
    *,
    registry: ToolRegistry = SAAS,
    compliance: ComplianceMode = ComplianceMode.STANDARD,
    switches: Switches | None = None,
) -> TenantView:
    return compile_policy(
        TENANT,
        1,
        PolicyDocument.model_validate(document),
        registry,
        compliance=PROFILES[compliance],
        switches=switches or Switches(),
    )


def decide(
    who: TenantContext,
    tool: str,
    args: dict[str, Any],
    policy: TenantView,
    *,
    platform: Switches | None = None,
    registry: ToolRegistry = SAAS,
    confirmed: bool = False,
) -> Decision:
    return evaluate(
        who,
        ProposedCall(tool, args),
        registry=registry,
        view=policy,
        platform=platform or Switches(),
        confirmed=confirmed,
    )


BASICS = {
    "packages": [{"package": "basics"}, {"package": "whatsapp"}, {"package": "web"}, {"package": "memory"}],
    "grants": [
        {"id": "everyone-echo", "tools": ["echo@v1"]},
        {
            "id": "contacts-only",
            "tools": ["whatsapp_send@v1"],
            "when": [{"path": "to", "op": "one_of", "value": [CONTACT]}],
        },
        {
            "id": "docs-sites",
            "tools": ["web_fetch@v1"],
            "when": [{"path": "url", "op": "url_domain", "value": ["docs.example.com", "*.example.org"]}],
        },
        {"id": "admins-wipe", "tools": ["memory_wipe@v1"]},
    ],
}


def test_an_empty_policy_denies_everything() -> None:
    decision = decide(ctx(Role.OWNER), "echo@v1", {"text": "hi"}, view({}))
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.NOT_GRANTED)


def test_a_grant_allows_and_names_itself() -> None:
    decision = decide(ctx(), "echo@v1", {"text": "hi"}, view(BASICS))
    assert (decision.verdict, decision.code, decision.rule_ids) == (Verdict.ALLOW, Code.ALLOWED, ("everyone-echo",))
    assert decision.arguments == {"text": "hi"}
    assert decision.args_digest is None  # computed only where a confirmation binds to it


@pytest.mark.parametrize("name", ["shell@v1", "write_file@v1", "python_exec@v1"])
def test_local_tools_are_a_capability_denial_in_saas(name: str) -> None:
    everything = {"packages": [{"package": "local"}, {"package": "basics"}], "grants": [{"id": "all", "tools": ["*"]}]}
    decision = decide(ctx(Role.OWNER), name, {"command": "rm -rf /", "path": "/etc/passwd"}, view(everything))
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.CAPABILITY_DENIED)


@pytest.mark.parametrize("name", ["delete_everything", "rm -rf /", "echo@v2", "ECHO@v1", "", "x" * 10_000])
def test_unknown_tools_are_denied(name: str) -> None:
    decision = decide(ctx(Role.OWNER), name, {}, view(BASICS))
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.UNKNOWN_TOOL)


def test_local_tools_exist_in_self_hosted_but_still_need_a_grant() -> None:
    hosted = fixture_tools.registry(DeploymentMode.SELF_HOSTED)
    policy = view({"packages": [{"package": "local"}]}, registry=hosted)
    assert decide(ctx(Role.OWNER), "shell@v1", {"command": "ls"}, policy, registry=hosted).code is Code.NOT_GRANTED
    granted = view(
        {"packages": [{"package": "local"}], "grants": [{"id": "ops", "tools": ["shell@v1"], "roles": ["admin"]}]},
        registry=hosted,
    )
    assert decide(ctx(Role.ADMIN), "shell@v1", {"command": "ls"}, granted, registry=hosted).allowed
    assert decide(ctx(Role.MEMBER), "shell@v1", {"command": "ls"}, granted, registry=hosted).code is Code.NOT_GRANTED


def test_installed_package_allowlist_narrows_what_is_visible() -> None:
    narrowed = {"packages": [{"package": "basics", "tools": ["echo@v1"]}], "grants": [{"id": "all", "tools": ["*"]}]}
    policy = view(narrowed)
    assert policy.visible == {"echo@v1"}
    assert decide(ctx(), "echo@v1", {"text": "x"}, policy).allowed
    assert decide(ctx(), "whoami_tool@v1", {}, policy).code is Code.NOT_GRANTED


@pytest.mark.parametrize(
    ("switches", "platform", "kind"),
    [
        (Switches(all=True), None, PrincipalKind.USER),
        (Switches(tools=frozenset({"echo@v1"})), None, PrincipalKind.USER),
        (None, Switches(all=True), PrincipalKind.USER),
        (None, Switches(tools=frozenset({"echo@v1"})), PrincipalKind.USER),
        (Switches(ai=True), None, PrincipalKind.AI_EXECUTION),
    ],
)
def test_kill_switches_deny_before_anything_else(
    switches: Switches | None, platform: Switches | None, kind: PrincipalKind
) -> None:
    who = ctx(Role.OWNER)
    if kind is PrincipalKind.AI_EXECUTION:
        who = who.for_ai_execution(uuid.uuid4())
    decision = decide(who, "echo@v1", {"text": "x"}, view(BASICS, switches=switches), platform=platform)
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.KILL_SWITCH)


def test_pausing_ai_leaves_humans_working() -> None:
    policy = view(BASICS, switches=Switches(ai=True))
    assert decide(ctx(), "echo@v1", {"text": "x"}, policy).allowed


def test_integration_switch_covers_its_tools_only() -> None:
    policy = view(BASICS, switches=Switches(integrations=frozenset({"whatsapp"})))
    assert decide(ctx(), "whatsapp_send@v1", {"to": CONTACT, "message": "hi"}, policy).code is Code.KILL_SWITCH
    assert decide(ctx(), "echo@v1", {"text": "x"}, policy).allowed


@pytest.mark.parametrize(
    "args",
    [{}, {"text": 5}, {"text": "x" * 1001}, {"text": "x", "extra": None} | {"text": ["a"]}, {"text": None}],
)
def test_invalid_arguments_are_denied_with_details(args: dict[str, Any]) -> None:
    decision = decide(ctx(), "echo@v1", args, view(BASICS))
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.INVALID_ARGUMENTS)
    assert decision.details


def test_unknown_arguments_are_refused_not_dropped() -> None:
    decision = decide(ctx(), "echo@v1", {"text": "x", "tenant_id": str(uuid.uuid4())}, view(BASICS))
    assert (decision.code, decision.details[0]["loc"]) == (Code.INVALID_ARGUMENTS, ["tenant_id"])


def test_any_forbid_wins_over_grants() -> None:
    doc = {
        **BASICS,
        "forbids": [
            {"id": "no-secrets", "tools": ["echo@v1"], "when": [{"path": "text", "op": "prefix", "value": "secret"}]}
        ],
    }
    policy = view(doc)
    denied = decide(ctx(Role.OWNER), "echo@v1", {"text": "secret plans"}, policy)
    assert (denied.code, denied.rule_ids) == (Code.POLICY_DENIED, ("no-secrets",))
    assert decide(ctx(Role.OWNER), "echo@v1", {"text": "public"}, policy).allowed


def test_a_forbid_that_cannot_be_evaluated_denies() -> None:
    doc = {
        **BASICS,
        "forbids": [{"id": "odd", "tools": ["echo@v1"], "when": [{"path": "missing", "op": "equals", "value": 1}]}],
    }
    decision = decide(ctx(), "echo@v1", {"text": "x"}, view(doc))
    assert decision.code is Code.POLICY_DENIED
    assert decision.errors


def test_privileged_tools_need_their_role_whatever_the_grant_says() -> None:
    policy = view(BASICS)
    member = decide(ctx(Role.MEMBER), "memory_wipe@v1", {"scope": "all"}, policy)
    assert member.code is Code.ROLE_REQUIRED
    assert decide(ctx(Role.ADMIN), "memory_wipe@v1", {"scope": "all"}, policy).allowed
    assert decide(ctx(Role.OWNER), "memory_wipe@v1", {"scope": "all"}, policy).allowed


def test_grant_roles_restrict_callers() -> None:
    doc = {"packages": [{"package": "basics"}], "grants": [{"id": "admins", "tools": ["echo@v1"], "roles": ["admin"]}]}
    policy = view(doc)
    assert decide(ctx(Role.MEMBER), "echo@v1", {"text": "x"}, policy).code is Code.NOT_GRANTED
    assert decide(ctx(Role.OWNER), "echo@v1", {"text": "x"}, policy).allowed  # owner implies admin


@pytest.mark.parametrize(("to", "allowed"), [(CONTACT, True), ("+4930999999", False), ("+49301234567", False)])
def test_argument_conditions_bind_recipients(to: str, allowed: bool) -> None:
    decision = decide(ctx(), "whatsapp_send@v1", {"to": to, "message": "hi"}, view(BASICS), confirmed=True)
    assert decision.allowed is allowed
    if not allowed:
        assert (decision.code, decision.rule_ids) == (Code.ARGUMENT_DENIED, ("contacts-only",))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://docs.example.com/page", True),
        ("https://api.example.org/x", True),
        ("https://example.org/", False),  # *.example.org is subdomains only
        ("https://docs.example.com.evil.net/", False),
        ("https://evil.net/?docs.example.com", False),
        ("https://docs.example.com@evil.net/", False),
        ("https://evil.net\\@docs.example.com/", False),
        ("ftp://docs.example.com/", False),
        ("https://DOCS.EXAMPLE.COM/", True),
        ("https://docs.example.com./", True),
        ("docs.example.com/page", False),
    ],
)
def test_url_domain_conditions(url: str, allowed: bool) -> None:
    decision = decide(ctx(), "web_fetch@v1", {"url": url}, view(BASICS))
    assert decision.allowed is allowed, decision


def test_range_and_length_and_equals_conditions() -> None:
    doc = {
        "packages": [{"package": "basics"}],
        "grants": [
            {
                "id": "short-naps",
                "tools": ["slow@v1"],
                "when": [{"path": "seconds", "op": "range", "value": {"max": 1}}],
            },
            {
                "id": "short-echo",
                "tools": ["echo@v1"],
                "when": [{"path": "text", "op": "length", "value": {"min": 1, "max": 5}}],
            },
        ],
    }
    policy = view(doc)
    assert decide(ctx(), "slow@v1", {"seconds": 0.5}, policy).allowed
    assert decide(ctx(), "slow@v1", {"seconds": 2}, policy).code is Code.ARGUMENT_DENIED
    assert decide(ctx(), "echo@v1", {"text": "hey"}, policy).allowed
    assert decide(ctx(), "echo@v1", {"text": "too long"}, policy).code is Code.ARGUMENT_DENIED
    equals = view(
        {
            "packages": [{"package": "basics"}],
            "grants": [
                {"id": "only-hi", "tools": ["echo@v1"], "when": [{"path": "text", "op": "equals", "value": "hi"}]}
            ],
        }
    )
    assert decide(ctx(), "echo@v1", {"text": "hi"}, equals).allowed
    assert not decide(ctx(), "echo@v1", {"text": "hi!"}, equals).allowed


def test_service_accounts_get_only_grants_that_name_them() -> None:
    account = uuid.uuid4()
    sa_ctx = ctx(Role.OWNER, kind=PrincipalKind.SERVICE_ACCOUNT, principal=account)
    assert decide(sa_ctx, "echo@v1", {"text": "x"}, view(BASICS)).code is Code.NOT_GRANTED
    scoped = {
        **BASICS,
        "grants": [
            *BASICS["grants"],
            {"id": "ci-bot", "tools": ["echo@v1"], "principals": [str(account)], "kinds": ["service_account"]},
        ],
    }
    assert decide(sa_ctx, "echo@v1", {"text": "x"}, view(scoped)).rule_ids == ("ci-bot",)
    other = ctx(Role.OWNER, kind=PrincipalKind.SERVICE_ACCOUNT)
    assert decide(other, "echo@v1", {"text": "x"}, view(scoped)).code is Code.NOT_GRANTED


def test_an_agent_never_exceeds_the_principal_it_acts_for() -> None:
    member = ctx(Role.MEMBER)
    agent = member.for_ai_execution(uuid.uuid4(), roles=frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}))
    assert agent.roles == {Role.MEMBER}
    assert decide(agent, "memory_wipe@v1", {"scope": "all"}, view(BASICS)).code is Code.ROLE_REQUIRED
    # A grant for humans only does not reach their agents.
    humans = {**BASICS, "grants": [{"id": "humans", "tools": ["echo@v1"], "kinds": ["user"]}]}
    assert decide(member, "echo@v1", {"text": "x"}, view(humans)).allowed
    assert decide(agent, "echo@v1", {"text": "x"}, view(humans)).code is Code.NOT_GRANTED
    # The agent of a service account is bound by the account's scopes, not by grants for humans' agents.
    account = ctx(Role.OWNER, kind=PrincipalKind.SERVICE_ACCOUNT).for_ai_execution(uuid.uuid4())
    assert decide(account, "echo@v1", {"text": "x"}, view(BASICS)).code is Code.NOT_GRANTED


def test_principal_grants_cover_that_principals_agents() -> None:
    alice = uuid.uuid4()
    doc = {
        "packages": [{"package": "basics"}],
        "grants": [{"id": "alice", "tools": ["echo@v1"], "principals": [str(alice)]}],
    }
    policy = view(doc)
    assert decide(ctx(principal=alice), "echo@v1", {"text": "x"}, policy).allowed
    assert decide(ctx(principal=alice).for_ai_execution(uuid.uuid4()), "echo@v1", {"text": "x"}, policy).allowed
    assert not decide(ctx(), "echo@v1", {"text": "x"}, policy).allowed


def test_high_impact_tools_need_confirmation_and_then_allow_on_condition() -> None:
    args = {"to": CONTACT, "message": "hi"}
    pending = decide(ctx(), "whatsapp_send@v1", args, view(BASICS))
    assert (pending.verdict, pending.code) == (Verdict.CONFIRM, Code.CONFIRMATION_REQUIRED)
    confirmed = decide(ctx(), "whatsapp_send@v1", args, view(BASICS), confirmed=True)
    assert (confirmed.verdict, confirmed.needed_confirmation) == (Verdict.ALLOW, True)
    assert confirmed.args_digest == pending.args_digest
    plain = decide(ctx(), "echo@v1", {"text": "x"}, view(BASICS), confirmed=True)
    assert (plain.verdict, plain.needed_confirmation) == (Verdict.ALLOW, False)


def test_a_grant_can_ask_for_confirmation() -> None:
    doc = {"packages": [{"package": "basics"}], "grants": [{"id": "careful", "tools": ["echo@v1"], "confirm": True}]}
    assert decide(ctx(), "echo@v1", {"text": "x"}, view(doc)).verdict is Verdict.CONFIRM


def test_compliance_modes_only_add_restrictions() -> None:
    hipaa = view(BASICS, compliance=ComplianceMode.HIPAA)
    assert decide(ctx(), "whatsapp_send@v1", {"to": CONTACT, "message": "x"}, hipaa, confirmed=True).code is (
        Code.COMPLIANCE_DENIED
    )
    assert decide(ctx(Role.ADMIN), "memory_wipe@v1", {"scope": "all"}, hipaa).verdict is Verdict.CONFIRM
    assert decide(ctx(), "echo@v1", {"text": "x"}, hipaa).allowed  # reads stay plain
    gdpr = view(BASICS, compliance=ComplianceMode.GDPR)
    assert decide(ctx(Role.ADMIN), "memory_wipe@v1", {"scope": "all"}, gdpr).verdict is Verdict.CONFIRM
    assert decide(ctx(), "web_fetch@v1", {"url": "https://docs.example.com/"}, gdpr).allowed


def test_decisions_are_deterministic_and_explain_themselves() -> None:
    policy = view(BASICS)
    first = decide(ctx(), "whatsapp_send@v1", {"to": "+4930999999", "message": "x"}, policy)
    again = decide(ctx(), "whatsapp_send@v1", {"to": "+4930999999", "message": "x"}, policy)
    assert first == again
    assert first.summary() == {
        "verdict": "deny",
        "code": "argument_denied",
        "reason": first.reason,
        "rule_ids": ["contacts-only"],
    }


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"packages": [{"package": "nope"}]}, "unknown package 'nope'"),
        ({"packages": [{"package": "basics", "tools": ["shell@v1"]}]}, "package 'basics' has no tool 'shell@v1'"),
        (
            {"packages": [{"package": "basics"}], "grants": [{"id": "g", "tools": ["ghost@v1"]}]},
            "unknown tool 'ghost@v1'",
        ),
        (
            {"packages": [{"package": "basics"}], "grants": [{"id": "g", "tools": ["shell@v1"]}]},
            "cannot exist in saas mode",
        ),
        (
            {"packages": [{"package": "basics"}], "grants": [{"id": "g", "tools": ["web_fetch@v1"]}]},
            "not in an installed package",
        ),
        (
            {
                "packages": [{"package": "basics"}],
                "grants": [{"id": "g", "tools": ["echo@v1"]}, {"id": "g", "tools": ["echo@v1"]}],
            },
            "used twice",
        ),
        ({"egress": {"allow_domains": ["Docs.Example.com"]}}, "invalid egress domain pattern .Docs.Example.com"),
        ({"egress": {"deny_domains": ["*.10.0.0.1"]}}, "wildcard on an IP address"),
        ({"egress": {"deny_domains": ["evil.com/path"]}}, "invalid egress domain pattern"),
        ({"ai": {"vendors": ["openai"], "extra": 1}}, "Extra inputs are not permitted"),
    ],
)
def test_policies_are_validated_when_written(document: dict[str, Any], problem: str) -> None:
    with pytest.raises((InvalidInput, ValueError), match=problem):
        PolicyDocument.model_validate(document).check(SAAS)


def test_egress_lists_and_ai_vendors_compile_into_the_tenant_view() -> None:
    document = PolicyDocument.model_validate(
        {"egress": {"allow_domains": ["docs.example.com", "*.example.org"], "deny_domains": ["bad.example.org"]},
         "ai": {"vendors": ["anthropic"]}}
    )  # fmt: skip
    document.check(SAAS)
    compiled = compile_policy(
        uuid.uuid4(), 1, document, SAAS, compliance=PROFILES[ComplianceMode.STANDARD], switches=Switches()
    )
    assert compiled.egress_allow == {"docs.example.com", "*.example.org"}
    assert compiled.egress_deny == {"bad.example.org"}
    assert compiled.ai_vendors == {"anthropic"}
    assert PolicyDocument().ai.vendors == []  # no external model provider until the tenant opts in


@pytest.mark.parametrize(
    "condition",
    [
        {"path": "to", "op": "one_of", "value": []},
        {"path": "to", "op": "range", "value": {"min": 5, "max": 1}},
        {"path": "url", "op": "url_domain", "value": ["Example.com"]},
        {"path": "url", "op": "url_domain", "value": ["evil.com/path"]},
        {"path": "x", "op": "regex", "value": ".*"},
        {"path": "../x", "op": "equals", "value": 1},
        {"path": "x", "op": "length", "value": {"min": float("nan")}},
    ],
)
def test_malformed_conditions_are_refused(condition: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - pydantic's ValidationError is a ValueError; the message varies
        PolicyDocument.model_validate({"grants": [{"id": "g", "tools": ["echo@v1"], "when": [condition]}]})


class _Policies:
    """An in-memory policy source: what the database-backed cache provides, minus the database."""

    def __init__(self, policy: TenantView) -> None:
        self.policy = policy

    async def view(self, ctx: TenantContext) -> TenantView:
        return self.policy

    async def platform(self) -> Switches:
        return Switches()


async def test_the_quota_hook_is_asked_only_about_allowed_calls() -> None:
    asked: list[str] = []

    async def quota(who: TenantContext, spec: Any, decision: Decision) -> Decision | None:
        asked.append(spec.name)
        if spec.name == "echo@v1":
            return Decision(Verdict.DENY, Code.QUOTA_EXCEEDED, "Tool calls per day: 100 of 100 used.", spec.name)
        return None

    gate = Gate(registry=SAAS, policies=_Policies(view(BASICS)), quota=quota)
    assert (await gate.decide(ctx(), ProposedCall("echo@v1", {"text": "x"}))).code is Code.QUOTA_EXCEEDED
    assert (await gate.decide(ctx(), ProposedCall("web_fetch@v1", {"url": "https://docs.example.com/"}))).allowed
    assert (await gate.decide(ctx(), ProposedCall("ghost@v1", {}))).code is Code.UNKNOWN_TOOL
    assert asked == ["echo@v1", "web_fetch@v1"]


async def test_a_failing_quota_backend_or_policy_source_denies() -> None:
    async def broken(who: TenantContext, spec: Any, decision: Decision) -> Decision | None:
        raise ConnectionError("redis is down")

    class Unreachable(_Policies):
        async def view(self, ctx: TenantContext) -> TenantView:
            raise ConnectionError("database is down")

    quota_down = Gate(registry=SAAS, policies=_Policies(view(BASICS)), quota=broken)
    assert (await quota_down.decide(ctx(), ProposedCall("echo@v1", {"text": "x"}))).code is Code.GATE_ERROR
    policy_down = Gate(registry=SAAS, policies=Unreachable(view(BASICS)))
    decision = await policy_down.decide(ctx(), ProposedCall("echo@v1", {"text": "x"}))
    assert (decision.verdict, decision.code) == (Verdict.DENY, Code.POLICY_UNAVAILABLE)


class _PayArgs(BaseModel):
    amount: int
    ratio: float = 0.0


@tool("pay@v1", description="Pay.", effect=ToolEffect.EXTERNAL)
async def _pay(call: ToolCall, args: _PayArgs) -> dict[str, str]:
    raise AssertionError("never run in these tests")


PAYMENTS = ToolRegistry(DeploymentMode.SAAS)
PAYMENTS.register(_pay)
PAYMENTS.add_package(ToolPackage("payments", "Pay.", ("pay@v1",)))
PAY_POLICY = {
    "packages": [{"package": "payments"}],
    "grants": [
        {"id": "small", "tools": ["pay@v1"], "when": [{"path": "amount", "op": "range", "value": {"max": 100}}]}
    ],
    "forbids": [
        {"id": "no-high-ratio", "tools": ["pay@v1"], "when": [{"path": "ratio", "op": "range", "value": {"min": 0.5}}]}
    ],
}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"amount": 5, "ratio": 0.1}, Code.ALLOWED),
        ({"amount": 5, "ratio": 0.9}, Code.POLICY_DENIED),
        ({"amount": 5, "ratio": float("nan")}, Code.POLICY_DENIED),  # NaN must not slip past the forbid
        ({"amount": 5, "ratio": float("inf")}, Code.POLICY_DENIED),
        ({"amount": 10**400, "ratio": 0.1}, Code.ARGUMENT_DENIED),  # no overflow, just too much
        ({"amount": -(10**400), "ratio": 0.1}, Code.ALLOWED),
    ],
)
def test_range_conditions_hold_for_hostile_numbers(args: dict[str, Any], code: Code) -> None:
    policy = view(PAY_POLICY, registry=PAYMENTS)
    assert decide(ctx(), "pay@v1", args, policy, registry=PAYMENTS).code is code
