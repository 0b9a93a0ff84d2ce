"""FastAPI dependencies: the services, and the caller's verified identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tenantgate.api._ratelimit import guarded_authentication
from tenantgate.auth import PlatformPrincipal
from tenantgate.context import TenantContext
from tenantgate.installation import Services

__all__ = ["Caller", "Operator", "ServicesDep"]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# Declared for the OpenAPI document (which operations need which credential); the header itself is read,
# verified and rate-limited by the authenticators below, never by these.
_TENANT_BEARER = HTTPBearer(
    scheme_name="TenantCredential", description="A tenant API key (tg_...) or a JWT from a configured issuer.",
    auto_error=False,
)  # fmt: skip
_PLATFORM_BEARER = HTTPBearer(scheme_name="PlatformKey", description="A platform key (tgp_...).", auto_error=False)
_Declared = HTTPAuthorizationCredentials | None


async def tenant_caller(
    request: Request, services: ServicesDep, _declared: Annotated[_Declared, Security(_TENANT_BEARER)] = None
) -> TenantContext:
    """Authenticate the request. The tenant comes from the credential and nothing else."""
    ctx = await guarded_authentication(
        request,
        services,
        lambda: services.authenticator.authenticate(
            request.headers.get("authorization"), request_id=request.state.request_id
        ),
    )
    request.state.tenant_id = str(ctx.tenant_id)
    request.state.principal_id = str(ctx.principal_id)
    # Per key and per tenant request rates, counted once the caller is known.
    await services.quotas.check_request(ctx, str(ctx.credential_id) if ctx.credential_id else None)
    return ctx


async def platform_operator(
    request: Request, services: ServicesDep, _declared: Annotated[_Declared, Security(_PLATFORM_BEARER)] = None
) -> PlatformPrincipal:
    operator = await guarded_authentication(
        request,
        services,
        lambda: services.platform_keys.authenticate(
            request.headers.get("authorization"), request_id=request.state.request_id
        ),
    )
    request.state.principal_id = f"platform:{operator.key_id}"
    return operator


Caller = Annotated[TenantContext, Depends(tenant_caller)]
Operator = Annotated[PlatformPrincipal, Depends(platform_operator)]
