"""The platform operator's console: every tenant with its status and usage; suspend and resume."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tenantgate.api._deps import ServicesDep
from tenantgate.api.console._render import render, security_headers
from tenantgate.api.console._session import ConsoleRoute, FormOperator, Operator
from tenantgate.tenants import TenantStatus

__all__ = ["router"]

router = APIRouter(prefix="/console/platform", route_class=ConsoleRoute, include_in_schema=False)


@router.get("")
async def tenants(request: Request, op: Operator, services: ServicesDep) -> Response:
    """Tenants, their status, and their budgets against their limits (the platform API's usage view)."""
    found = await services.tenants.list()
    usage = {u["tenant_id"]: u for u in await services.quotas.usage_all([t.id for t in found])}
    notice = {"suspended": "Tenant paused: its credentials and sessions stop working.", "resumed": "Tenant resumed."}
    return render("platform.html", op=op, tenants=found, usage=usage,
                  notice=notice.get(request.query_params.get("done", "")))  # fmt: skip


async def _set(tenant_id: uuid.UUID, status: TenantStatus, op: FormOperator, services: ServicesDep) -> None:
    # The same call as POST /v1/platform/tenants/{id}/suspend|resume, audited on the platform chain.
    await services.tenants.set_status(tenant_id, status, actor=op.operator.key_id, request_id=op.operator.request_id)


@router.post("/tenants/{tenant_id}/suspend")
async def suspend(tenant_id: uuid.UUID, op: FormOperator, services: ServicesDep) -> Response:
    await _set(tenant_id, TenantStatus.SUSPENDED, op, services)
    return security_headers(RedirectResponse("/console/platform?done=suspended", status_code=303))


@router.post("/tenants/{tenant_id}/resume")
async def resume(tenant_id: uuid.UUID, op: FormOperator, services: ServicesDep) -> Response:
    await _set(tenant_id, TenantStatus.ACTIVE, op, services)
    return security_headers(RedirectResponse("/console/platform?done=resumed", status_code=303))
