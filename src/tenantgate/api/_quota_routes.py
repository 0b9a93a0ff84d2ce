"""Usage and limits: a tenant sees its own usage; the platform sees every tenant's and sets limits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Caller, Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses

router = APIRouter(prefix="/v1", tags=["quotas"], responses=ERROR_RESPONSES)

_PLAN_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
PlanName = Annotated[str, Path(pattern=_PLAN_NAME)]


class LimitsIn(BaseModel):
    """A plan to assign and/or limits to override (names as in ``GET /v1/usage`` ``limits``)."""

    model_config = ConfigDict(extra="forbid")

    plan: str | None = Field(None, pattern=_PLAN_NAME)
    overrides: dict[str, int] = Field(default_factory=dict)
    clear: bool = Field(False, description="Drop earlier overrides instead of merging into them.")


class LimitsOut(BaseModel):
    tenant_id: uuid.UUID
    plan: str | None
    overrides: dict[str, int]
    limits: dict[str, int]


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limits: dict[str, int]


class PlanOut(BaseModel):
    plan: str
    limits: dict[str, int] = Field(description="The limits the plan sets over the mode's defaults.")


class BudgetOut(BaseModel):
    limit: str
    used: int
    max: int


class BudgetPeriodOut(BudgetOut):
    period_start: datetime
    resets_at: datetime


class UsageOut(BaseModel):
    """The tenant's budgets (current period) and per-minute rates against its limits."""

    tenant_id: uuid.UUID
    plan: str | None
    overrides: dict[str, int]
    budgets: list[BudgetPeriodOut]
    rates: list[BudgetOut]
    limits: dict[str, int]


class TenantUsageOut(BaseModel):
    tenant_id: uuid.UUID
    plan: str | None
    budgets: list[BudgetOut]


@router.get("/usage", response_model=UsageOut)
async def my_usage(ctx: Caller, services: ServicesDep) -> UsageOut:
    """This tenant's current usage against its limits: budgets (day/month) and per-minute rates."""
    return UsageOut.model_validate(await services.quotas.usage(ctx))


@router.get("/platform/usage", response_model=list[TenantUsageOut])
async def platform_usage(op: Operator, services: ServicesDep) -> list[TenantUsageOut]:
    """Every tenant's budgets against its limits (platform keys only; admin role)."""
    tenants = await services.tenants.list()
    return [TenantUsageOut.model_validate(u) for u in await services.quotas.usage_all([t.id for t in tenants])]


@router.get("/platform/tenants/{tenant_id}/limits", response_model=LimitsOut, responses=error_responses(404))
async def get_limits(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> LimitsOut:
    resolved = await services.quotas.plans.tenant_limits_admin(tenant_id)
    return LimitsOut(tenant_id=tenant_id, plan=resolved.plan, overrides=resolved.overrides,
                     limits=resolved.limits.model_dump())  # fmt: skip


@router.put("/platform/tenants/{tenant_id}/limits", response_model=LimitsOut, responses=error_responses(404))
async def set_limits(tenant_id: uuid.UUID, body: LimitsIn, op: Operator, services: ServicesDep) -> LimitsOut:
    """Assign a plan and/or override limits for one tenant. Audited on the platform's and the tenant's chain."""
    resolved = await services.quotas.plans.set_tenant(
        tenant_id, plan=body.plan, overrides=body.overrides, clear=body.clear, actor=op.key_id
    )
    return LimitsOut(tenant_id=tenant_id, plan=resolved.plan, overrides=resolved.overrides,
                     limits=resolved.limits.model_dump())  # fmt: skip


@router.put("/platform/plans/{name}", response_model=PlanOut)
async def set_plan(name: PlanName, body: PlanIn, op: Operator, services: ServicesDep) -> PlanOut:
    """Create or replace a plan: limits over the mode's defaults."""
    return PlanOut(plan=name, limits=await services.quotas.plans.set_plan(name, body.limits, actor=op.key_id))
