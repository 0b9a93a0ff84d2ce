"""Choosing a tenant's planner: its policy's choice or the platform default, eligibility first.

A planner that would send the tenant's data to a vendor its policy (or compliance mode)
does not name is refused here, before any client exists: no byte leaves. Provider HTTP
goes through the egress door. The platform's API key is only ever sent to the platform's
own base URL; a tenant that points its planner elsewhere brings its own key, by the name
of one of its credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from tenantgate.agent._anthropic import AnthropicPlanner
from tenantgate.agent._openai import OpenAIPlanner
from tenantgate.agent._planner import Planner, PlannerError, VendorNotEligible
from tenantgate.agent._scripted import ScriptedPlanner
from tenantgate.config import Settings
from tenantgate.context import TenantContext
from tenantgate.egress import EgressPolicy, Resolver, safe_client
from tenantgate.gate import PlannerChoice, TenantView
from tenantgate.tools import CredentialSource

__all__ = ["PlannerFactory", "PlannerHttp", "ProviderDefaults"]

_KEY_FIELDS = ("api_key", "key", "token")
CREDENTIAL_USER = "agent.planner"  # how credential use by the planner shows in the audit trail


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderDefaults:
    """The platform's planner configuration, from settings."""

    planner: str = "scripted"
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str | None = None
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_model: str | None = None
    anthropic_api_key: SecretStr | None = None
    timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderDefaults:
        return cls(
            planner=settings.agent_planner,
            openai_base_url=settings.openai_base_url,
            openai_model=settings.openai_model,
            openai_api_key=settings.openai_api_key,
            anthropic_base_url=settings.anthropic_base_url,
            anthropic_model=settings.anthropic_model,
            anthropic_api_key=settings.anthropic_api_key,
            timeout_s=settings.agent_provider_timeout_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerHttp:
    """How provider clients reach out: the egress policy, and (for tests) the resolver and a dialer factory.

    Each provider client gets its own dialer from ``dialer()`` and closes it with itself, so one run's
    closing never cuts another run's connection.
    """

    policy: EgressPolicy | None = None
    resolver: Resolver | None = None
    dialer: Callable[[], httpx.AsyncBaseTransport] | None = None


class PlannerFactory:
    """Opens the planner one run uses."""

    def __init__(
        self,
        *,
        defaults: ProviderDefaults,
        http: PlannerHttp | None = None,
        credentials: CredentialSource | None = None,
    ) -> None:
        self._defaults = defaults
        self._http = http or PlannerHttp()
        self._policy = self._http.policy or EgressPolicy(timeout_s=defaults.timeout_s)
        self._credentials = credentials

    def choice(self, view: TenantView) -> PlannerChoice:
        """The tenant's planner choice, or the platform default."""
        if view.ai_planner is not None:
            return view.ai_planner
        if self._defaults.planner == "scripted":
            return PlannerChoice(provider="scripted")
        return PlannerChoice(provider="openai" if self._defaults.planner == "openai" else "anthropic")

    def model_for(self, choice: PlannerChoice) -> str | None:
        """The model a run with this choice uses (None for the scripted planner)."""
        if choice.provider == "scripted":
            return None
        default = self._defaults.openai_model if choice.provider == "openai" else self._defaults.anthropic_model
        return choice.model or default

    @staticmethod
    def check_eligible(choice: PlannerChoice, view: TenantView) -> None:
        """Raise VendorNotEligible unless the tenant (and its compliance mode) lets this vendor see its data."""
        vendor = choice.vendor_name
        if vendor is None:
            return
        if vendor not in view.ai_vendors:
            raise VendorNotEligible(
                f"The planner's vendor {vendor!r} is not in this tenant's ai.vendors; nothing was sent. "
                "An administrator can add it to the policy.",
                vendor=vendor,
            )
        eligible = view.compliance.eligible_vendors
        if eligible is not None and vendor not in eligible:
            raise VendorNotEligible(
                f"The {view.compliance.mode.value} compliance mode does not allow vendor {vendor!r}; nothing was sent.",
                vendor=vendor,
            )

    async def open(self, ctx: TenantContext, view: TenantView, *, run_id: uuid.UUID) -> Planner:
        """The planner for this run; VendorNotEligible or PlannerError before any request if it cannot be."""
        choice = self.choice(view)
        self.check_eligible(choice, view)
        if choice.provider == "scripted":
            return ScriptedPlanner(choice.script)
        d = self._defaults
        openai = choice.provider == "openai"
        platform_url = d.openai_base_url if openai else d.anthropic_base_url
        base_url = choice.base_url or platform_url
        model = choice.model or (d.openai_model if openai else d.anthropic_model)
        if model is None:
            raise PlannerError(f"No {choice.provider} model is configured for this tenant.", reason="no_model")
        key = await self._key(ctx, choice, base_url == platform_url, run_id)
        vendor = choice.vendor_name
        assert vendor is not None
        dialer = self._http.dialer() if self._http.dialer is not None else None
        client = safe_client(self._policy, self._http.resolver, dialer=dialer)
        if openai:
            return OpenAIPlanner(client=client, base_url=base_url, model=model, api_key=key, vendor=vendor)
        return AnthropicPlanner(
            client=client, base_url=base_url, model=model, api_key=key, vendor=vendor, max_tokens=choice.max_tokens
        )

    async def _key(self, ctx: TenantContext, choice: PlannerChoice, platform_url: bool, run_id: uuid.UUID) -> str:
        if choice.credential is not None:
            if self._credentials is None:
                raise PlannerError(
                    "The tenant's planner names a credential, but this process has no credential vault.",
                    reason="no_api_key",
                )
            credential = await self._credentials.use(
                ctx, choice.credential, tool=CREDENTIAL_USER, call_id=run_id, run_id=run_id
            )
            for field in _KEY_FIELDS:
                if credential.secret.get(field):
                    return credential.secret[field]
            raise PlannerError(f"Credential {choice.credential!r} holds no api_key.", reason="no_api_key")
        if not platform_url:
            # Never send the platform's key to a URL a tenant chose.
            raise PlannerError(
                "A planner with its own base_url must name the tenant credential holding its key.",
                reason="no_api_key",
            )
        secret = self._defaults.openai_api_key if choice.provider == "openai" else self._defaults.anthropic_api_key
        if secret is None:
            raise PlannerError(f"No {choice.provider} API key is configured on this platform.", reason="no_api_key")
        return secret.get_secret_value()
