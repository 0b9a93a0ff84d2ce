"""Retention periods: a tenant's members read them, its owners and admins set them; so does the platform."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt

from tenantgate.api._deps import Caller, Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.audit import AuditEvent
from tenantgate.auth import system_context
from tenantgate.retention import MAX_DAYS, ClassRetention, TenantRetention

router = APIRouter(prefix="/v1", tags=["retention"], responses=ERROR_RESPONSES)


class ClassRetentionOut(BaseModel):
    days: int | None = Field(description="Days kept; null: forever.")
    source: Literal["default", "tenant", "compliance"]
    default_days: int | None
    override: bool
    floor_days: int | None = Field(description="The fewest days the tenant's compliance mode keeps this class.")

    @classmethod
    def of(cls, c: ClassRetention) -> ClassRetentionOut:
        return cls(days=c.days, source=c.source, default_days=c.default_days, override=c.override,
                   floor_days=c.floor_days)  # fmt: skip


class RetentionOut(BaseModel):
    compliance_mode: str
    classes: dict[str, ClassRetentionOut]

    @classmethod
    def of(cls, r: TenantRetention) -> RetentionOut:
        return cls(
            compliance_mode=r.compliance_mode,
            classes={c.value: ClassRetentionOut.of(v) for c, v in r.classes.items()},
        )


Days = Annotated[StrictInt, Field(ge=1, le=MAX_DAYS)] | None | Literal["default"]


class RetentionIn(RootModel[dict[str, Days]]):
    """Data class -> whole days (1 to 36500), null to keep forever, or "default" to drop the override."""

    model_config = ConfigDict(json_schema_extra={"example": {"messages": 30, "audit_payloads": None}})


@router.get("/retention", response_model=RetentionOut)
async def get_retention(ctx: Caller, services: ServicesDep) -> RetentionOut:
    """How long each data class of this tenant is kept, and where each period comes from."""
    return RetentionOut.of(await services.retention.periods.get(ctx))


@router.put("/retention", response_model=RetentionOut)
async def set_retention(body: RetentionIn, ctx: Caller, services: ServicesDep) -> RetentionOut:
    """Override classes' periods (owner or admin; audited): days from 1 to 36500, null forever, "default"."""
    return RetentionOut.of(await services.retention.periods.set(ctx, body.root))


@router.get("/platform/tenants/{tenant_id}/retention", response_model=RetentionOut, responses=error_responses(404))
async def platform_get_retention(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> RetentionOut:
    """A tenant's retention, as the platform sees it (platform key)."""
    ctx = system_context(tenant_id, mode=services.settings.mode, request_id=f"platform-{op.key_id}")
    return RetentionOut.of(await services.retention.periods.get(ctx))


@router.put("/platform/tenants/{tenant_id}/retention", response_model=RetentionOut, responses=error_responses(404))
async def platform_set_retention(
    tenant_id: uuid.UUID, body: RetentionIn, op: Operator, services: ServicesDep
) -> RetentionOut:
    """Set a tenant's retention (platform key): audited on the tenant's chain and the platform's."""
    ctx = system_context(tenant_id, mode=services.settings.mode, request_id=f"platform-{op.key_id}")
    resolved = await services.retention.periods.set(ctx, body.root)
    payload = {"tenant_id": str(tenant_id), "changes": body.root}
    await services.audit.record_platform(AuditEvent("retention.set", payload=payload), actor=op.key_id)
    return RetentionOut.of(resolved)
