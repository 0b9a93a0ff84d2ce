"""The anomaly rules: which audited events each counts, by which subject, and their defaults.

A rule counts matching events per (tenant, subject) in fixed windows (``window_s``
seconds, aligned to the epoch) and fires once when a window's count reaches ``threshold``.
Rules read only what the audit record says (action, decision, code, principal, a few
payload ids): never arguments, never secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenantgate.audit import AuditRecord

__all__ = [
    "DEFAULTS",
    "AlertSettings",
    "Response",
    "Rule",
    "RuleOverride",
    "RuleSettings",
    "Severity",
    "matches",
]

_SUBJECT_MAX = 200


class Rule(StrEnum):
    DENIAL_SPIKE_TENANT = "denial_spike_tenant"  # gate denials of the whole tenant
    DENIAL_SPIKE_PRINCIPAL = "denial_spike_principal"  # gate denials of one principal
    FORBIDDEN_TOOL = "forbidden_tool"  # tools that do not exist in the mode: the "rm -rf" signature
    CONFIRMATION_IGNORED = "confirmation_ignored"  # confirmation_required again and again
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # idempotency keys reused for other calls
    WEBHOOK_FAILURES = "webhook_failures"  # inbound deliveries failing verification, per endpoint
    BUDGET_BURN = "budget_burn"  # tool calls executed faster than the threshold
    AUTH_FAILURES = "auth_failures"  # refused credentials, per API key prefix


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


Response = Literal["none", "pause_ai", "revoke_key"]


class RuleSettings(BaseModel):
    """One rule's effective settings for a tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    threshold: int = Field(ge=1, le=1_000_000)
    window_s: int = Field(ge=10, le=86_400)
    severity: Severity = Severity.WARNING
    # Off by default: an automatic response is a tenant's explicit choice.
    response: Response = "none"


class RuleOverride(BaseModel):
    """What a tenant changes of a rule's defaults; unset fields keep them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool | None = None
    threshold: int | None = Field(None, ge=1, le=1_000_000)
    window_s: int | None = Field(None, ge=10, le=86_400)
    severity: Severity | None = None
    response: Response | None = None


DEFAULTS: dict[Rule, RuleSettings] = {
    Rule.DENIAL_SPIKE_TENANT: RuleSettings(threshold=50, window_s=60),
    Rule.DENIAL_SPIKE_PRINCIPAL: RuleSettings(threshold=20, window_s=60),
    Rule.FORBIDDEN_TOOL: RuleSettings(threshold=3, window_s=300, severity=Severity.CRITICAL),
    Rule.CONFIRMATION_IGNORED: RuleSettings(threshold=10, window_s=600),
    Rule.IDEMPOTENCY_CONFLICT: RuleSettings(threshold=5, window_s=300),
    Rule.WEBHOOK_FAILURES: RuleSettings(threshold=10, window_s=300),
    Rule.BUDGET_BURN: RuleSettings(threshold=600, window_s=300),
    Rule.AUTH_FAILURES: RuleSettings(threshold=10, window_s=300, severity=Severity.CRITICAL),
}
# Revoking needs a key to revoke: only the rule that counts per key prefix names one.
_REVOCABLE = frozenset({Rule.AUTH_FAILURES})


class AlertSettings(BaseModel):
    """A tenant's alert settings document: rule overrides and sinks. Stored as given, merged on use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: dict[Rule, RuleOverride] = Field(default_factory=dict)
    log: bool = True  # every alert is logged (tenant id, rule, subject) unless turned off
    webhook_url: str | None = Field(None, max_length=2000, description="https:// endpoint for signed alerts.")
    webhook_credential: str | None = Field(
        None, max_length=100, description="The name of this tenant's webhook_secret credential (whsec_...)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> AlertSettings:
        if self.webhook_url is not None and not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url must be an http(s) URL")
        if (self.webhook_url is None) != (self.webhook_credential is None):
            raise ValueError("webhook_url and webhook_credential go together: the secret signs every delivery")
        for rule, override in self.rules.items():
            if override.response == "revoke_key" and rule not in _REVOCABLE:
                raise ValueError(f"{rule.value}: revoke_key applies only to {', '.join(sorted(_REVOCABLE))}")
        return self

    def rule(self, rule: Rule) -> RuleSettings:
        override = self.rules.get(rule)
        base = DEFAULTS[rule]
        if override is None:
            return base
        return base.model_copy(update=override.model_dump(exclude_none=True))


@dataclass(frozen=True, slots=True)
class Match:
    rule: Rule
    subject: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", self.subject[:_SUBJECT_MAX])  # the alerts table's bound


def _principal(record: AuditRecord) -> str:
    return f"principal:{record.principal_id}" if record.principal_id is not None else "principal:unknown"


def _payload(record: AuditRecord, key: str) -> str | None:
    value = record.payload.get(key) if record.payload is not None else None
    return str(value)[:_SUBJECT_MAX] if isinstance(value, str) and value else None


def matches(record: AuditRecord) -> list[Match]:
    """The rules ``record`` counts for, each with its subject (bounded text)."""
    action = record.action
    if action == "gate.decided":
        if record.decision != "deny":
            return []
        found = [Match(Rule.DENIAL_SPIKE_TENANT, "tenant"), Match(Rule.DENIAL_SPIKE_PRINCIPAL, _principal(record))]
        if record.code in ("unknown_tool", "capability_denied"):
            found.append(Match(Rule.FORBIDDEN_TOOL, _principal(record)))
        return found
    if action == "tool.executed":
        return [Match(Rule.BUDGET_BURN, "tenant")]
    if action == "confirmation.requested":
        return [Match(Rule.CONFIRMATION_IGNORED, _principal(record))]
    if action == "tool.idempotency_conflict":
        return [Match(Rule.IDEMPOTENCY_CONFLICT, _principal(record))]
    if action == "webhook.rejected":
        endpoint = _payload(record, "endpoint_id")
        return [Match(Rule.WEBHOOK_FAILURES, f"endpoint:{endpoint or 'unknown'}")]
    if action == "auth.failed":
        prefix = _payload(record, "key_prefix")
        return [Match(Rule.AUTH_FAILURES, f"key:{prefix}")] if prefix is not None else []
    return []
