"""The tenant's retention periods: any member reads them; owners and admins set them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES
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
