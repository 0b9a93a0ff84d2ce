"""Platform endpoints (``tgp_`` platform keys only): tenants, and principals and keys inside them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from tenantgate.api._deps import Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES
from tenantgate.api._models import (
    KeyCreate,
    KeyCreated,
    PrincipalCreate,
    PrincipalOut,
    TenantCreate,
    TenantOut,
)
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.installation import Services
from tenantgate.tenants import TenantStatus

router = APIRouter(prefix="/v1/platform", tags=["platform"], responses=ERROR_RESPONSES)


async def _inside(services: Services, tenant_id: uuid.UUID, request_id: str) -> TenantContext:
    tenant = await services.tenants.get(tenant_id)
    if tenant.status is not TenantStatus.ACTIVE:
        raise NotFound("No such active tenant.")
    return system_context(tenant_id, mode=services.settings.mode, request_id=request_id)


@router.post("/tenants", response_model=TenantOut, status_code=201)
async def create_tenant(body: TenantCreate, op: Operator, services: ServicesDep) -> TenantOut:
    return TenantOut.of(await services.tenants.create(body.name, display_name=body.display_name))


@router.get("/tenants", response_model=list[TenantOut])
async def list_tenants(op: Operator, services: ServicesDep) -> list[TenantOut]:
    return [TenantOut.of(t) for t in await services.tenants.list()]


@router.get("/tenants/{tenant_id}", response_model=TenantOut)
async def get_tenant(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> TenantOut:
    return TenantOut.of(await services.tenants.get(tenant_id))


@router.post("/tenants/{tenant_id}/suspend", response_model=TenantOut)
async def suspend_tenant(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> TenantOut:
    """Every credential of the tenant stops working on its next request."""
    return TenantOut.of(await services.tenants.set_status(tenant_id, TenantStatus.SUSPENDED))


@router.post("/tenants/{tenant_id}/resume", response_model=TenantOut)
async def resume_tenant(tenant_id: uuid.UUID, op: Operator, services: ServicesDep) -> TenantOut:
    return TenantOut.of(await services.tenants.set_status(tenant_id, TenantStatus.ACTIVE))


@router.post("/tenants/{tenant_id}/principals", response_model=PrincipalOut, status_code=201)
async def create_principal(
    tenant_id: uuid.UUID, body: PrincipalCreate, op: Operator, services: ServicesDep
) -> PrincipalOut:
    ctx = await _inside(services, tenant_id, op.request_id)
    principal = await services.principals.create(
        ctx, name=body.name, kind=body.kind, roles=frozenset(body.roles), external_id=body.external_id
    )
    return PrincipalOut.of(principal)


@router.post("/tenants/{tenant_id}/keys", response_model=KeyCreated, status_code=201)
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
