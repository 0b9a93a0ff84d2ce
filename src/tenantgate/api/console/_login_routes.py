"""Signing in and out of the console (tenant users and platform operators), and its static files."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tenantgate.api._deps import ServicesDep
from tenantgate.api.console._render import STATIC, render, security_headers
from tenantgate.api.console._session import (
    COOKIE,
    LOGIN_COOKIE,
    PLATFORM_COOKIE,
    ConsoleRoute,
    FormOperator,
    FormUser,
    form_text,
    login_csrf,
    set_cookie,
)
from tenantgate.errors import NotFound, PermissionDenied, Unauthenticated

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _login_page(request: Request, template: str, status_code: int = 200, **context: object) -> Response:
    token = login_csrf(request)
    response = render(template, status_code=status_code, csrf=token, **context)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


async def _check_login_csrf(request: Request) -> None:
    # No session yet: the form's token must equal the one in the browser's login cookie.
    expected = request.cookies.get(LOGIN_COOKIE, "").encode()
    given = (await form_text(request, "csrf")).encode()
    if not expected or not hmac.compare_digest(expected, given):
        raise PermissionDenied("The sign-in form's CSRF token is missing or wrong; reload the page and try again.")


async def _guarded(request: Request, services: ServicesDep, prefix: str) -> str:
    """Refuse (429) a source or account that failed sign-in too often; return the client address."""
    address = request.client.host if request.client is not None else "unknown"
    await services.quotas.check_auth_allowed(address, prefix)
    return address


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound("No such file.")
    body, media_type = STATIC[name]
    response = Response(body, media_type=media_type)
    response.headers["Cache-Control"] = "max-age=300"
    return response


@router.get("")
async def index() -> Response:
    return security_headers(RedirectResponse("/console/approvals", status_code=303))


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request, "login.html", error=None, tenant="", user="")


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    """Tenant name, user name and password. Failures count against the auth-failure rate limits."""
    await _check_login_csrf(request)
    tenant, user = (await form_text(request, "tenant")).strip(), (await form_text(request, "user")).strip()
    password = await form_text(request, "password")
    # Per source address, and per account (so one account cannot be guessed at from many addresses).
    account = f"console:{tenant}/{user}"[:120]
    address = await _guarded(request, services, account)
    try:
        login = await services.console.login(tenant, user, password, request_id=request.state.request_id)
    except Unauthenticated as exc:
        await services.quotas.auth_failed(address, account)
        return _login_page(request, "login.html", status_code=401, error=exc.message, tenant=tenant, user=user)
    response = security_headers(RedirectResponse("/console/approvals", status_code=303))
    set_cookie(response, request, COOKIE, login.cookie, max_age=int(services.console.timeouts.ttl.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(user: FormUser, services: ServicesDep) -> Response:
    await services.console.logout(user.ctx, user.cookie)
    response = security_headers(RedirectResponse("/console/login", status_code=303))
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


@router.get("/platform/login")
async def platform_login_form(request: Request) -> Response:
    return _login_page(request, "platform_login.html", error=None)


@router.post("/platform/login")
async def platform_login(request: Request, services: ServicesDep) -> Response:
    """A platform key (``tgp_...``) opens a platform console session."""
    await _check_login_csrf(request)
    key = await form_text(request, "key")
    prefix = "_".join(key.strip().split("_", 2)[:2])[:40] if key.startswith("tgp_") else None
    address = await _guarded(request, services, prefix or "console:platform")
    try:
        cookie, _ = await services.console.platform_login(key, request_id=request.state.request_id)
    except Unauthenticated as exc:
        await services.quotas.auth_failed(address, prefix or "console:platform")
        return _login_page(request, "platform_login.html", status_code=401, error=exc.message)
    response = security_headers(RedirectResponse("/console/platform", status_code=303))
    ttl = int(services.console.timeouts.ttl.total_seconds())
    set_cookie(response, request, PLATFORM_COOKIE, cookie, max_age=ttl)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/platform/logout")
async def platform_logout(op: FormOperator, services: ServicesDep) -> Response:
    await services.console.platform_logout(op.operator, op.cookie)
    response = security_headers(RedirectResponse("/console/platform/login", status_code=303))
    response.delete_cookie(PLATFORM_COOKIE, path="/console", httponly=True, samesite="strict")
    return response
