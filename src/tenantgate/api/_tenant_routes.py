"""Tenant endpoints: who am I, principals and API keys of the caller's own tenant."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Response

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._models import (
    KeyCreate,
    KeyCreated,
    KeyOut,
    KeyRotate,
    PasswordSet,
    PrincipalCreate,
    PrincipalOut,
    WhoAmI,
)
from tenantgate.context import PrincipalKind
from tenantgate.errors import InvalidInput

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


@router.get("/whoami", response_model=WhoAmI, tags=["identity"])
async def whoami(ctx: Caller) -> WhoAmI:
    """The caller's tenant, principal, kind and roles, as derived from its credential."""
    return WhoAmI(tenant_id=ctx.tenant_id, principal_id=ctx.principal_id, kind=ctx.kind, roles=sorted(ctx.roles))


@router.get("/principals", response_model=list[PrincipalOut], tags=["identity"])
async def list_principals(ctx: Caller, services: ServicesDep) -> list[PrincipalOut]:
    return [PrincipalOut.of(p) for p in await services.principals.list(ctx)]


@router.post(
    "/principals", response_model=PrincipalOut, status_code=201, tags=["identity"], responses=error_responses(409)
)
async def create_principal(body: PrincipalCreate, ctx: Caller, services: ServicesDep) -> PrincipalOut:
    principal = await services.principals.create(
        ctx, name=body.name, kind=body.kind, roles=frozenset(body.roles), external_id=body.external_id
    )
    return PrincipalOut.of(principal)


@router.put(
    "/principals/{principal_id}/password", status_code=204, tags=["identity"], responses=error_responses(404, 409)
)
async def set_console_password(
    principal_id: uuid.UUID, body: PasswordSet, ctx: Caller, services: ServicesDep
) -> Response:
    """Set a user's admin-console password (their own, or as an owner/admin one they could grant)."""
    await services.passwords.set(ctx, principal_id, body.password.get_secret_value())
    return Response(status_code=204)


@router.get("/keys", response_model=list[KeyOut], tags=["keys"])
async def list_keys(ctx: Caller, services: ServicesDep, principal_id: uuid.UUID | None = None) -> list[KeyOut]:
    return [KeyOut.of(k) for k in await services.keys.list(ctx, principal_id=principal_id)]


@router.post("/keys", response_model=KeyCreated, status_code=201, tags=["keys"], responses=error_responses(404))
async def create_key(body: KeyCreate, ctx: Caller, services: ServicesDep) -> KeyCreated:
    principal_id = body.principal_id
    if principal_id is None:
        if ctx.kind not in (PrincipalKind.USER, PrincipalKind.SERVICE_ACCOUNT):
            raise InvalidInput("principal_id is required for this caller.")
        principal_id = ctx.principal_id
    issued = await services.keys.create(
        ctx,
        principal_id=principal_id,
        roles=frozenset(body.roles) if body.roles is not None else None,
        name=body.name,
        expires_at=body.expiry(),
    )
    return KeyCreated.issued(issued)


@router.post(
    "/keys/{key_id}/rotate",
    response_model=KeyCreated,
    status_code=201,
    tags=["keys"],
    responses=error_responses(404, 409),
)
async def rotate_key(key_id: uuid.UUID, body: KeyRotate, ctx: Caller, services: ServicesDep) -> KeyCreated:
    issued = await services.keys.rotate(ctx, key_id, overlap=timedelta(seconds=body.overlap_seconds))
    return KeyCreated.issued(issued)


@router.post("/keys/{key_id}/revoke", response_model=KeyOut, tags=["keys"], responses=error_responses(404))
async def revoke_key(key_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> KeyOut:
    return KeyOut.of(await services.keys.revoke(ctx, key_id))
