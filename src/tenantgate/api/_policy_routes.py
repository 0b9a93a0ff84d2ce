"""A tenant's own policy and kill switches (owner/admin)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._lifecycle import RestoreIn, version_of
from tenantgate.auth import require_manager
from tenantgate.gate import PolicyDocument, PolicyVersion, SwitchInfo, SwitchScope

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class PolicyOut(BaseModel):
    version: int = Field(description="0 until a policy is saved: nothing installed, nothing granted.")
    document: PolicyDocument
    created_at: datetime | None
    created_by: uuid.UUID | None

    @classmethod
    def of(cls, v: PolicyVersion) -> PolicyOut:
        return cls(version=v.version, document=v.document, created_at=v.created_at, created_by=v.created_by)


class SwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: SwitchScope
    target: str = Field("", max_length=200, description="Tool or integration name; empty for 'all' and 'ai'.")
    reason: str = Field(min_length=1, max_length=500)


class SwitchOut(BaseModel):
    id: uuid.UUID
    scope: SwitchScope
    target: str
    reason: str
    set_by: str
    set_at: datetime

    @classmethod
    def of(cls, s: SwitchInfo) -> SwitchOut:
        return cls(id=s.id, scope=s.scope, target=s.target, reason=s.reason, set_by=s.set_by, set_at=s.set_at)


def actor(ctx: Caller) -> str:
    return f"{ctx.kind.value}:{ctx.principal_id}"


@router.get("/policy", response_model=PolicyOut, tags=["policy"])
async def get_policy(ctx: Caller, services: ServicesDep) -> PolicyOut:
    return PolicyOut.of(await services.policies.policy(ctx))


@router.put("/policy", response_model=PolicyOut, tags=["policy"])
async def put_policy(body: PolicyDocument, ctx: Caller, services: ServicesDep) -> PolicyOut:
    """Replace the policy with a new version. Validated now: unknown tools or packages are refused."""
    return PolicyOut.of(await services.policies.set_policy(ctx, body))


@router.get("/policy/versions", response_model=list[PolicyOut], tags=["policy"])
async def policy_versions(ctx: Caller, services: ServicesDep) -> list[PolicyOut]:
    """Every saved version of the policy, oldest first (owner/admin)."""
    return [PolicyOut.of(v) for v in await services.policies.versions(ctx)]


@router.post("/policy/restore", response_model=PolicyOut, tags=["policy"], responses=error_responses(404))
async def restore_policy(ctx: Caller, services: ServicesDep, body: RestoreIn | None = None) -> PolicyOut:
    """Save an earlier version's document as the next version (owner/admin); default: the one before the current."""
    return PolicyOut.of(await services.policies.restore(ctx, version_of(body)))


@router.get("/kill-switches", response_model=list[SwitchOut], tags=["policy"])
async def list_switches(ctx: Caller, services: ServicesDep) -> list[SwitchOut]:
    require_manager(ctx)
    return [SwitchOut.of(s) for s in await services.policies.tenant_switches(ctx)]


@router.post("/kill-switches", response_model=SwitchOut, status_code=201, tags=["policy"])
async def set_switch(body: SwitchIn, ctx: Caller, services: ServicesDep) -> SwitchOut:
    """Switch off tools, an integration, or all AI execution for this tenant, in every process within a second."""
    info = await services.policies.set_tenant_switch(
        ctx, body.scope, body.target, reason=body.reason, set_by=actor(ctx)
    )
    return SwitchOut.of(info)


@router.delete("/kill-switches/{switch_id}", response_model=SwitchOut, tags=["policy"], responses=error_responses(404))
async def clear_switch(switch_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> SwitchOut:
    return SwitchOut.of(await services.policies.clear_tenant_switch(ctx, switch_id))
