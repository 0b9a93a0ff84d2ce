"""Console pages that act: approvals, kill switches, API keys. Each action calls the API's own path.

Forms post here with the session's CSRF token; the change goes through the same service call
as the matching API endpoint, so it is role-gated and audited identically.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tenantgate.api import _confirmation_routes as confirmation_api
from tenantgate.api._deps import ServicesDep
from tenantgate.api._policy_routes import actor
from tenantgate.api.console._render import render, security_headers
from tenantgate.api.console._session import ConsoleRoute, ConsoleUser, FormUser, User, form_text
from tenantgate.auth import IssuedKey, require_manager
from tenantgate.context import PrincipalKind, Role
from tenantgate.errors import InvalidInput
from tenantgate.gate import SwitchScope
from tenantgate.installation import Services

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

_DONE = {
    "approved": "Approved: the waiting call may now run once.",
    "denied": "Denied.",
    "switch_on": "Kill switch on: it holds in every process within a second.",
    "switch_off": "Kill switch cleared.",
    "revoked": "Key revoked: it stops working at once.",
}


def _back(path: str, done: str) -> Response:
    return security_headers(RedirectResponse(f"{path}?done={done}", status_code=303))


def _notice(request: Request) -> str | None:
    return _DONE.get(request.query_params.get("done", ""))


# --- approvals ----------------------------------------------------------------------------------


@router.get("/approvals")
async def approvals(request: Request, user: User, services: ServicesDep) -> Response:
    """Pending confirmations with the exact tool and arguments, and when each expires."""
    pending = await services.confirmations.pending(user.ctx)
    return render("approvals.html", user=user, active="approvals", pending=pending, notice=_notice(request))


@router.post("/approvals/{confirmation_id}/approve")
async def approve(confirmation_id: uuid.UUID, user: FormUser, services: ServicesDep) -> Response:
    # The API endpoint itself: whatever approving does there (audit, resuming a run), it does here.
    await confirmation_api.approve(confirmation_id, user.ctx, services)
    return _back("/console/approvals", "approved")


@router.post("/approvals/{confirmation_id}/deny")
async def deny(confirmation_id: uuid.UUID, user: FormUser, services: ServicesDep) -> Response:
    await confirmation_api.deny(confirmation_id, user.ctx, services)
    return _back("/console/approvals", "denied")


# --- kill switches --------------------------------------------------------------------------------


@router.get("/switches")
async def switches(request: Request, user: User, services: ServicesDep) -> Response:
    """The tenant's kill switches, and the tools and integrations its policy installs."""
    require_manager(user.ctx)
    current = await services.policies.tenant_switches(user.ctx)
    installed = (await services.policies.policy(user.ctx)).document.installed_tools(services.registry)
    tools = sorted(installed)
    integrations = sorted(
        {t.spec.integration for name in tools if (t := services.registry.get(name)) and t.spec.integration}
    )
    paused = any(s.scope is SwitchScope.AI for s in current)
    return render("switches.html", user=user, active="switches", switches=current, tools=tools,
                  integrations=integrations, paused=paused, notice=_notice(request))  # fmt: skip


@router.post("/switches")
async def switch_on(request: Request, user: FormUser, services: ServicesDep) -> Response:
    scope_text, target, reason = [(await form_text(request, k)).strip() for k in ("scope", "target", "reason")]
    try:
        scope = SwitchScope(scope_text)
    except ValueError:
        raise InvalidInput(f"scope is one of {', '.join(s.value for s in SwitchScope)}.") from None
    if len(target) > 200 or not 1 <= len(reason) <= 500:
        raise InvalidInput("A reason (1 to 500 characters) is required; a target is at most 200 characters.")
    await services.policies.set_tenant_switch(user.ctx, scope, target, reason=reason, set_by=actor(user.ctx))
    return _back("/console/switches", "switch_on")


@router.post("/switches/{switch_id}/clear")
async def switch_off(switch_id: uuid.UUID, user: FormUser, services: ServicesDep) -> Response:
    await services.policies.clear_tenant_switch(user.ctx, switch_id)
    return _back("/console/switches", "switch_off")


# --- API keys -------------------------------------------------------------------------------------


async def _keys_page(
    request: Request, user: ConsoleUser, services: Services, issued: IssuedKey | None = None, status_code: int = 200
) -> Response:
    keys = await services.keys.list(user.ctx)
    principals = await services.principals.list(user.ctx)
    return render("keys.html", status_code=status_code, user=user, active="keys", keys=keys, principals=principals,
                  issued=issued, roles=[r.value for r in Role], notice=_notice(request))  # fmt: skip


@router.get("/keys")
async def keys(request: Request, user: User, services: ServicesDep) -> Response:
    return await _keys_page(request, user, services)


@router.post("/keys")
async def create_key(request: Request, user: FormUser, services: ServicesDep) -> Response:
    """Create a key; the page that answers shows it once (never in a URL, never stored in clear)."""
    form = await request.form()
    name = (await form_text(request, "name")).strip()
    principal_text = (await form_text(request, "principal_id")).strip()
    try:
        principal_id = uuid.UUID(principal_text) if principal_text else user.ctx.principal_id
        roles = frozenset(Role(str(r)) for r in form.getlist("roles")) or None
    except ValueError:
        raise InvalidInput("principal_id is a principal's id and roles are owner, admin or member.") from None
    if len(name) > 200:
        raise InvalidInput("A key name is at most 200 characters.")
    if principal_id == user.ctx.principal_id and user.ctx.kind is not PrincipalKind.USER:
        raise InvalidInput("principal_id is required for this caller.")
    issued = await services.keys.create(user.ctx, principal_id=principal_id, roles=roles, name=name)
    return await _keys_page(request, user, services, issued, status_code=201)


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: uuid.UUID, request: Request, user: FormUser, services: ServicesDep) -> Response:
    try:
        overlap = int((await form_text(request, "overlap_seconds")) or "0")
    except ValueError:
        raise InvalidInput("overlap_seconds is a whole number of seconds.") from None
    if not 0 <= overlap <= 30 * 86400:
        raise InvalidInput("overlap_seconds is between 0 and 30 days.")
    issued = await services.keys.rotate(user.ctx, key_id, overlap=timedelta(seconds=overlap))
    return await _keys_page(request, user, services, issued, status_code=201)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, user: FormUser, services: ServicesDep) -> Response:
    await services.keys.revoke(user.ctx, key_id)
    return _back("/console/keys", "revoked")
