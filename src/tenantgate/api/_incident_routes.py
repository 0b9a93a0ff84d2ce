"""Incident controls for platform operators (``tgp_`` keys): revoke, rotate, pause, disable.

Each action is one call to a service (``auth``, ``vault``, ``gate``) and is audited there:
on the tenant's chain when it concerns a tenant, on the platform chain when it concerns
every tenant. Each holds in every process within a second (see README "Incident response").
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._models import KeyOut, PrincipalOut
from tenantgate.api._policy_routes import SwitchOut
from tenantgate.auth import PlatformPrincipal, system_context
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.gate import SwitchInfo, SwitchScope
from tenantgate.installation import Services

__all__ = ["router"]

router = APIRouter(prefix="/v1/platform", tags=["incident"], responses=ERROR_RESPONSES)


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why: kept in the audit trail.")


class RevokeKeys(Reason):
    principal_id: uuid.UUID | None = Field(None, description="Only this principal's keys. Default: every key.")
    disable_principal: bool = Field(False, description="Also disable the principal, so its JWTs stop too.")


class KeysRevoked(BaseModel):
    revoked: list[KeyOut]
    principal: PrincipalOut | None = None


class DataKeyRotated(BaseModel):
    data_key_id: uuid.UUID
    resealed: int


class Resumed(BaseModel):
    """What a resume turned off; ``switch`` is null when nothing was paused (nothing changed)."""

    resumed: bool
    switch: SwitchOut | None = None

    @classmethod
    def of(cls, info: SwitchInfo | None) -> Resumed:
        return cls(resumed=info is not None, switch=SwitchOut.of(info) if info is not None else None)


def _by(op: PlatformPrincipal) -> str:
    return f"platform:{op.key_id}"


async def _tenant(services: Services, tenant_id: uuid.UUID, op: PlatformPrincipal) -> TenantContext:
    # Any tenant that exists, suspended ones included: an incident may concern either.
    await services.tenants.get(tenant_id)
    return system_context(tenant_id, mode=services.settings.mode, request_id=op.request_id)


@router.post("/tenants/{tenant_id}/incident/revoke-keys", response_model=KeysRevoked, responses=error_responses(404))
async def revoke_keys(tenant_id: uuid.UUID, body: RevokeKeys, op: Operator, services: ServicesDep) -> KeysRevoked:
    """Revoke every API key of the tenant, or of one principal (and optionally disable it), at once."""
    if body.disable_principal and body.principal_id is None:
        raise InvalidInput("disable_principal needs principal_id: say which principal to disable.")
    ctx = await _tenant(services, tenant_id, op)
    revoked = await services.keys.revoke_all(ctx, principal_id=body.principal_id, reason=body.reason, by=_by(op))
    principal = None
    if body.disable_principal and body.principal_id is not None:
        principal = await services.principals.disable(ctx, body.principal_id, reason=body.reason, by=_by(op))
    return KeysRevoked(
        revoked=[KeyOut.of(k) for k in revoked], principal=PrincipalOut.of(principal) if principal else None
    )


@router.post(
    "/tenants/{tenant_id}/principals/{principal_id}/disable",
    response_model=PrincipalOut,
    responses=error_responses(404),
)
async def disable_principal(
    tenant_id: uuid.UUID, principal_id: uuid.UUID, body: Reason, op: Operator, services: ServicesDep
) -> PrincipalOut:
    """Disable a principal: its keys and JWTs are refused from the next request."""
    ctx = await _tenant(services, tenant_id, op)
    return PrincipalOut.of(await services.principals.disable(ctx, principal_id, reason=body.reason, by=_by(op)))


@router.post(
    "/tenants/{tenant_id}/principals/{principal_id}/enable", response_model=PrincipalOut, responses=error_responses(404)
)
async def enable_principal(
    tenant_id: uuid.UUID, principal_id: uuid.UUID, body: Reason, op: Operator, services: ServicesDep
) -> PrincipalOut:
    """Let a disabled principal authenticate again (revoked keys stay revoked)."""
    ctx = await _tenant(services, tenant_id, op)
    return PrincipalOut.of(await services.principals.enable(ctx, principal_id, reason=body.reason, by=_by(op)))


@router.post(
    "/tenants/{tenant_id}/incident/rotate-data-key", response_model=DataKeyRotated, responses=error_responses(404)
)
async def rotate_data_key(tenant_id: uuid.UUID, body: Reason, op: Operator, services: ServicesDep) -> DataKeyRotated:
    """Re-seal the tenant's credentials under a new data key and destroy the old one."""
    ctx = await _tenant(services, tenant_id, op)
    key_id, count = await services.credentials.rotate_data_key(ctx, reason=body.reason, by=_by(op))
    return DataKeyRotated(data_key_id=key_id, resealed=count)


@router.post("/tenants/{tenant_id}/incident/pause-ai", response_model=SwitchOut, responses=error_responses(404))
async def pause_tenant_ai(tenant_id: uuid.UUID, body: Reason, op: Operator, services: ServicesDep) -> SwitchOut:
    """Stop the tenant's AI execution: agent turns, scheduled runs, planner calls, AI tool calls."""
    ctx = await _tenant(services, tenant_id, op)
    return SwitchOut.of(
        await services.policies.set_tenant_switch(ctx, SwitchScope.AI, reason=body.reason, set_by=_by(op))
    )


@router.post("/tenants/{tenant_id}/incident/resume-ai", response_model=Resumed, responses=error_responses(404))
async def resume_tenant_ai(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> Resumed:
    ctx = await _tenant(services, tenant_id, op)
    return Resumed.of(await services.policies.resume_tenant_switch(ctx, SwitchScope.AI))


@router.post("/incident/pause-ai", response_model=SwitchOut)
async def pause_platform_ai(body: Reason, op: Operator, services: ServicesDep) -> SwitchOut:
    """Stop every tenant's AI execution."""
    info = await services.policies.set_platform_switch(
        SwitchScope.AI, reason=body.reason, set_by=_by(op), actor=op.key_id, request_id=op.request_id
    )
    return SwitchOut.of(info)


@router.post("/incident/resume-ai", response_model=Resumed)
async def resume_platform_ai(op: Operator, services: ServicesDep) -> Resumed:
    info = await services.policies.resume_platform_switch(SwitchScope.AI, actor=op.key_id, request_id=op.request_id)
    return Resumed.of(info)


@router.post("/incident/integrations/{name}/disable", response_model=SwitchOut, responses=error_responses(404))
async def disable_integration(name: str, body: Reason, op: Operator, services: ServicesDep) -> SwitchOut:
    """Deny every tool of one integration, for every tenant."""
    services.policies.check_integration(name)
    info = await services.policies.set_platform_switch(
        SwitchScope.INTEGRATION, name, reason=body.reason, set_by=_by(op), actor=op.key_id, request_id=op.request_id
    )
    return SwitchOut.of(info)


@router.post("/incident/integrations/{name}/enable", response_model=Resumed, responses=error_responses(404))
async def enable_integration(name: str, op: Operator, services: ServicesDep) -> Resumed:
    info = await services.policies.resume_platform_switch(
        SwitchScope.INTEGRATION, name, actor=op.key_id, request_id=op.request_id
    )
    if info is None:
        services.policies.check_integration(name)  # nothing to resume: say so if the name is unknown
    return Resumed.of(info)
