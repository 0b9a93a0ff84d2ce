"""Compliance modes: platform-defined restrictions a tenant carries on top of its own policy.

A mode only ever adds restrictions (tools or integrations off, confirmation on more
effects, fewer eligible model vendors, no raw content kept, data kept at least so long);
it never loosens a policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from tenantgate.tools import Capability, ToolEffect

__all__ = ["PROFILES", "ComplianceMode", "ComplianceProfile"]


class ComplianceMode(StrEnum):
    STANDARD = "standard"
    HIPAA = "hipaa"
    GDPR = "gdpr"


@dataclass(frozen=True, slots=True)
class ComplianceProfile:
    mode: ComplianceMode
    denied_capabilities: frozenset[Capability] = frozenset()
    denied_integrations: frozenset[str] = frozenset()
    confirm_effects: frozenset[ToolEffect] = frozenset()
    # Model vendors that may receive the tenant's data (None: any the tenant allows).
    eligible_vendors: frozenset[str] | None = None
    keep_raw_content: bool = True
    # The fewest days a retention data class is kept (tenantgate.retention): a tenant cannot
    # set less, and a shorter platform default is raised to this for the tenant.
    retention_floor_days: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


PROFILES = MappingProxyType(
    {
        ComplianceMode.STANDARD: ComplianceProfile(ComplianceMode.STANDARD),
        # Health data: nothing leaves without a human saying so, no chat-app messaging, and
        # only vendors the platform has a BAA with may see prompts.
        ComplianceMode.HIPAA: ComplianceProfile(
            ComplianceMode.HIPAA,
            denied_integrations=frozenset({"whatsapp"}),
            confirm_effects=frozenset({ToolEffect.WRITE, ToolEffect.EXTERNAL, ToolEffect.DESTRUCTIVE}),
            eligible_vendors=frozenset({"anthropic", "openai", "self_hosted"}),
            keep_raw_content=False,
            # HIPAA keeps the documentation of compliance six years (45 CFR 164.316(b)(2)).
            retention_floor_days=MappingProxyType({"audit_payloads": 6 * 365}),
        ),
        # Personal data: outbound and destructive actions need a human; raw pages are not kept.
        ComplianceMode.GDPR: ComplianceProfile(
            ComplianceMode.GDPR,
            confirm_effects=frozenset({ToolEffect.EXTERNAL, ToolEffect.DESTRUCTIVE}),
            keep_raw_content=False,
        ),
    }
)
