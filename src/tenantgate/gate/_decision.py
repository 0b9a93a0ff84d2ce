"""The gate's answer: total and explained, like Cedar's authorizer response."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Code", "Decision", "Verdict"]


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    CONFIRM = "confirm"


class Code(StrEnum):
    """Why. Clients and alerts branch on these; the reason text is for people."""

    ALLOWED = "allowed"
    UNKNOWN_TOOL = "unknown_tool"
    CAPABILITY_DENIED = "capability_denied"
    CHANNEL_ONLY = "channel_only"
    INVALID_ARGUMENTS = "invalid_arguments"
    KILL_SWITCH = "kill_switch"
    NOT_GRANTED = "not_granted"
    ARGUMENT_DENIED = "argument_denied"
    POLICY_DENIED = "policy_denied"
    ROLE_REQUIRED = "role_required"
    COMPLIANCE_DENIED = "compliance_denied"
    QUOTA_EXCEEDED = "quota_exceeded"
    QUOTA_BACKEND_UNAVAILABLE = "quota_backend_unavailable"
    CONFIRMATION_REQUIRED = "confirmation_required"
    CONFIRMATION_INVALID = "confirmation_invalid"
    POLICY_UNAVAILABLE = "policy_unavailable"
    GATE_ERROR = "gate_error"


@dataclass(frozen=True, slots=True)
class Decision:
    """``verdict`` with a machine-readable ``code``, a human ``reason`` and the rules that decided.

    ``arguments`` is the validated, normalised argument dict (present once validation
    passed); ``args_digest`` binds confirmations to exactly these arguments (set when a
    confirmation is involved; :func:`args_digest` computes it for anything else). ``errors``
    lists rules that could not be evaluated (skipped grants, or forbids that then denied).
    """

    verdict: Verdict
    code: Code
    reason: str
    tool: str
    rule_ids: tuple[str, ...] = ()
    arguments: dict[str, Any] | None = None
    args_digest: str | None = None
    errors: tuple[str, ...] = ()
    details: tuple[dict[str, Any], ...] = ()
    # An allow that holds only because the caller presented a confirmation; the boundary
    # must redeem that confirmation before it executes anything.
    needed_confirmation: bool = False

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    def summary(self) -> dict[str, Any]:
        """For audit payloads and API errors: never the arguments themselves."""
        out: dict[str, Any] = {"verdict": self.verdict.value, "code": self.code.value, "reason": self.reason}
        if self.rule_ids:
            out["rule_ids"] = list(self.rule_ids)
        if self.errors:
            out["errors"] = list(self.errors)
        if self.details:
            out["details"] = list(self.details)
        return out
