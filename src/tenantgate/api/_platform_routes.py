"""Platform endpoints (``tgp_`` platform keys only): tenants, and principals and keys inside them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._models import (
    KeyCreate,
    KeyCreated,
    PasswordSet,
    PrincipalCreate,
    PrincipalOut,
    TenantCreate,
    TenantOut,
)
from tenantgate.api._policy_routes import SwitchIn, SwitchOut
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.gate import ComplianceMode, SwitchScope
from tenantgate.installation import Services
from tenantgate.purge import PurgeRecord, PurgeState
from tenantgate.tenants import TenantStatus

router = APIRouter(prefix="/v1/platform", tags=["platform"], responses=ERROR_RESPONSES)


async def _inside(services: Services, tenant_id: uuid.UUID, request_id: str) -> TenantContext:
    tenant = await services.tenants.get(tenant_id)
    if tenant.status is not TenantStatus.ACTIVE:
        raise NotFound("No such active tenant.")
    return system_context(tenant_id, mode=services.settings.mode, request_id=request_id)


@router.post("/tenants", response_model=TenantOut, status_code=201, responses=error_responses(409))
async def create_tenant(body: TenantCreate, op: Operator, services: ServicesDep) -> TenantOut:
    tenant = await services.tenants.create(
        body.name, display_name=body.display_name, actor=op.key_id, request_id=op.request_id
    )
    return TenantOut.of(tenant)


@router.get("/tenants", response_model=list[TenantOut])
async def list_tenants(op: Operator, services: ServicesDep) -> list[TenantOut]:
    return [TenantOut.of(t) for t in await services.tenants.list()]


@router.get("/tenants/{tenant_id}", response_model=TenantOut, responses=error_responses(404))
async def get_tenant(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> TenantOut:
    return TenantOut.of(await services.tenants.get(tenant_id))


@router.post("/tenants/{tenant_id}/suspend", response_model=TenantOut, responses=error_responses(404, 409))
async def suspend_tenant(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> TenantOut:
    """Every credential of the tenant stops working on its next request."""
    suspended = await services.tenants.set_status(
        tenant_id, TenantStatus.SUSPENDED, actor=op.key_id, request_id=op.request_id
    )
    return TenantOut.of(suspended)


@router.post("/tenants/{tenant_id}/resume", response_model=TenantOut, responses=error_responses(404, 409))
async def resume_tenant(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> TenantOut:
    resumed = await services.tenants.set_status(
        tenant_id, TenantStatus.ACTIVE, actor=op.key_id, request_id=op.request_id
    )
    return TenantOut.of(resumed)


@router.post(
    "/tenants/{tenant_id}/principals", response_model=PrincipalOut, status_code=201, responses=error_responses(404, 409)
)
async def create_principal(
    tenant_id: uuid.UUID, body: PrincipalCreate, op: Operator, services: ServicesDep
) -> PrincipalOut:
    ctx = await _inside(services, tenant_id, op.request_id)
    principal = await services.principals.create(
        ctx, name=body.name, kind=body.kind, roles=frozenset(body.roles), external_id=body.external_id
    )
    return PrincipalOut.of(principal)


@router.put(
    "/tenants/{tenant_id}/principals/{principal_id}/password", status_code=204, responses=error_responses(404, 409)
)
async def set_console_password(
    tenant_id: uuid.UUID, principal_id: uuid.UUID, body: PasswordSet, op: Operator, services: ServicesDep
) -> Response:
    """Set a user's admin-console password (for example the first owner's)."""
    ctx = await _inside(services, tenant_id, op.request_id)
    await services.passwords.set(ctx, principal_id, body.password.get_secret_value())
    return Response(status_code=204)


@router.post("/tenants/{tenant_id}/keys", response_model=KeyCreated, status_code=201, responses=error_responses(404))
async def create_key(tenant_id: uuid.UUID, body: KeyCreate, op: Operator, services: ServicesDep) -> KeyCreated:
    if body.principal_id is None:
        raise InvalidInput("principal_id is required on platform key creation.")
    ctx = await _inside(services, tenant_id, op.request_id)
    issued = await services.keys.create(
        ctx,
        principal_id=body.principal_id,
        roles=frozenset(body.roles) if body.roles is not None else None,
        name=body.name,
        expires_at=body.expiry(),
    )
    return KeyCreated.issued(issued)


class PlatformSwitchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: SwitchScope
    target: str = Field("", max_length=200)
    reason: str = Field(min_length=1, max_length=500)


class ComplianceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: ComplianceMode


@router.get("/kill-switches", response_model=list[SwitchOut])
async def list_platform_switches(op: Operator, services: ServicesDep) -> list[SwitchOut]:
    return [SwitchOut.of(s) for s in await services.policies.platform_switches()]


@router.post("/kill-switches", response_model=SwitchOut, status_code=201)
async def set_platform_switch(body: PlatformSwitchIn, op: Operator, services: ServicesDep) -> SwitchOut:
    """Switch off all tools, one tool or one integration for every tenant, within a second everywhere."""
    info = await services.policies.set_platform_switch(
        body.scope, body.target, reason=body.reason, set_by=f"platform:{op.key_id}"
    )
    return SwitchOut.of(info)


@router.delete("/kill-switches/{switch_id}", response_model=SwitchOut, responses=error_responses(404))
async def clear_platform_switch(switch_id: uuid.UUID, op: Operator, services: ServicesDep) -> SwitchOut:
    return SwitchOut.of(await services.policies.clear_platform_switch(switch_id))


@router.post(
    "/tenants/{tenant_id}/kill-switches", response_model=SwitchOut, status_code=201, responses=error_responses(404)
)
async def set_tenant_switch(tenant_id: uuid.UUID, body: SwitchIn, op: Operator, services: ServicesDep) -> SwitchOut:
    """A kill switch for one tenant, including pausing all of its AI execution (scope 'ai')."""
    ctx = await _inside(services, tenant_id, op.request_id)
    info = await services.policies.set_tenant_switch(
        ctx, body.scope, body.target, reason=body.reason, set_by=f"platform:{op.key_id}"
    )
    return SwitchOut.of(info)


@router.delete(
    "/tenants/{tenant_id}/kill-switches/{switch_id}", response_model=SwitchOut, responses=error_responses(404)
)
async def clear_tenant_switch(
    tenant_id: uuid.UUID, switch_id: uuid.UUID, op: Operator, services: ServicesDep
) -> SwitchOut:
    ctx = await _inside(services, tenant_id, op.request_id)
    return SwitchOut.of(await services.policies.clear_tenant_switch(ctx, switch_id))


@router.put("/tenants/{tenant_id}/compliance", response_model=ComplianceIn, responses=error_responses(404))
async def set_compliance(tenant_id: uuid.UUID, body: ComplianceIn, op: Operator, services: ServicesDep) -> ComplianceIn:
    """Set the tenant's compliance mode: platform-defined restrictions on top of its policy."""
    await services.policies.set_compliance(tenant_id, body.mode)
    return body


class PurgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


class PurgeExecuteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: bool = False
    confirm: str | None = Field(None, max_length=200)  # the tenant's name, required with now


class PurgeOut(BaseModel):
    """A purge record and, once executed, its report (rows per table, objects, keys, audit events)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    state: PurgeState
    reason: str
    requested_by: str
    requested_at: datetime
    execute_after: datetime
    cancelled_by: str | None
    cancelled_at: datetime | None
    executed_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[str]
    report: dict[str, Any]

    @classmethod
    def of(cls, r: PurgeRecord) -> PurgeOut:
        return cls(
            id=r.id, tenant_id=r.tenant_id, state=r.state, reason=r.reason, requested_by=r.requested_by,
            requested_at=r.requested_at, execute_after=r.execute_after, cancelled_by=r.cancelled_by,
            cancelled_at=r.cancelled_at, executed_by=r.executed_by, started_at=r.started_at,
            finished_at=r.finished_at, steps=list(r.steps), report=r.report,
        )  # fmt: skip


@router.post(
    "/tenants/{tenant_id}/purge", response_model=PurgeOut, status_code=202, responses=error_responses(404, 409)
)
async def request_purge(tenant_id: uuid.UUID, body: PurgeIn, op: Operator, services: ServicesDep) -> PurgeOut:
    """Request a purge: the tenant is disabled at once; execution follows after the grace period."""
    record = await services.purges.request(
        tenant_id, reason=body.reason, requested_by=f"platform:{op.key_id}", actor=op.key_id,
        request_id=op.request_id,
    )  # fmt: skip
    return PurgeOut.of(record)


@router.get("/tenants/{tenant_id}/purge", response_model=PurgeOut, responses=error_responses(404))
async def get_purge(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> PurgeOut:
    """The tenant's latest purge and its report."""
    return PurgeOut.of(await services.purges.get(tenant_id))


@router.post("/tenants/{tenant_id}/purge/execute", response_model=PurgeOut, responses=error_responses(404, 409))
async def execute_purge(tenant_id: uuid.UUID, body: PurgeExecuteIn, op: Operator, services: ServicesDep) -> PurgeOut:
    """Execute the purge (after its grace period, or now with the tenant's name as confirm); resumes if interrupted."""
    record = await services.purges.execute(
        tenant_id, executed_by=f"platform:{op.key_id}", now=body.now, confirm=body.confirm, actor=op.key_id,
        request_id=op.request_id,
    )  # fmt: skip
    return PurgeOut.of(record)


@router.post("/tenants/{tenant_id}/purge/cancel", response_model=PurgeOut, responses=error_responses(404, 409))
async def cancel_purge(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> PurgeOut:
    """Withdraw a purge that has not started executing; the tenant gets its previous status back."""
    record = await services.purges.cancel(
        tenant_id, cancelled_by=f"platform:{op.key_id}", actor=op.key_id, request_id=op.request_id
    )
    return PurgeOut.of(record)
