"""The policy gate: tenant policy as data, compiled; kill switches; confirmations; the boundary."""

from tenantgate.gate._boundary import Boundary, CallOutcome
from tenantgate.gate._cache import PolicyCache, PolicyUnavailable
from tenantgate.gate._compiled import Switches, TenantView, compile_policy
from tenantgate.gate._compliance import PROFILES, ComplianceMode, ComplianceProfile
from tenantgate.gate._conditions import ArgCondition
from tenantgate.gate._confirmations import ConfirmationInfo, Confirmations, ConfirmationStatus, DecisionListener
from tenantgate.gate._decision import Code, Decision, Verdict
from tenantgate.gate._directives import DirectiveRetry, DirectiveRunner, Enqueue
from tenantgate.gate._gate import Gate, PolicySource, ProposedCall, QuotaHook, args_digest, evaluate, offerable
from tenantgate.gate._policy import (
    AiRules,
    EgressRules,
    Forbid,
    Grant,
    Installation,
    PlannerChoice,
    PolicyDocument,
    ScriptStep,
)
from tenantgate.gate._quota import ToolCallCheck, quota_hook
from tenantgate.gate._store import PolicyStore, PolicyVersion, SwitchInfo, SwitchScope

__all__ = [
    "PROFILES",
    "AiRules",
    "ArgCondition",
    "Boundary",
    "CallOutcome",
    "Code",
    "ComplianceMode",
    "ComplianceProfile",
    "ConfirmationInfo",
    "ConfirmationStatus",
    "Confirmations",
    "Decision",
    "DecisionListener",
    "DirectiveRetry",
    "DirectiveRunner",
    "EgressRules",
    "Enqueue",
    "Forbid",
    "Gate",
    "Grant",
    "Installation",
    "PlannerChoice",
    "PolicyCache",
    "PolicyDocument",
    "PolicySource",
    "PolicyStore",
    "PolicyUnavailable",
    "PolicyVersion",
    "ProposedCall",
    "QuotaHook",
    "ScriptStep",
    "SwitchInfo",
    "SwitchScope",
    "Switches",
    "TenantView",
    "ToolCallCheck",
    "Verdict",
    "args_digest",
    "compile_policy",
    "evaluate",
    "offerable",
    "quota_hook",
]
