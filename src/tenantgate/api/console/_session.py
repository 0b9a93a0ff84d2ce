"""Who is at the console: session cookies, CSRF checks, and errors rendered as pages.

Every console route uses :class:`ConsoleRoute`, so a refusal from a service (the same
refusals the API gives) becomes an HTML page with the API's status code, and a missing or
ended session on a page load becomes a redirect to the sign-in form.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute

from tenantgate.api._deps import ServicesDep
from tenantgate.api._errors import status_for
from tenantgate.api._ratelimit import quota_headers
from tenantgate.api.console._render import render, security_headers
from tenantgate.auth import PlatformPrincipal
from tenantgate.context import TenantContext
from tenantgate.errors import QuotaExceeded, TenantgateError, Unauthenticated

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "PLATFORM_COOKIE",
    "ConsoleRoute",
    "ConsoleUser",
    "FormOperator",
    "FormUser",
    "Operator",
    "User",
    "form_text",
    "login_csrf",
    "set_cookie",
]

PATH = "/console"
COOKIE = "tg_console"
PLATFORM_COOKIE = "tg_console_platform"
LOGIN_COOKIE = "tg_console_login"  # the sign-in forms' CSRF token (double submit: no session yet)


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """A tenant user signed in to the console: the same context an API key of theirs yields."""

    ctx: TenantContext
    cookie: str
    csrf: str


@dataclass(frozen=True, slots=True)
class ConsoleOperator:
    operator: PlatformPrincipal
    cookie: str
    csrf: str


async def console_user(request: Request, services: ServicesDep) -> ConsoleUser:
    cookie = request.cookies.get(COOKIE)
    ctx = await services.console.resolve(cookie, request_id=request.state.request_id)
    assert cookie is not None
    request.state.tenant_id = str(ctx.tenant_id)
    request.state.principal_id = str(ctx.principal_id)
    await services.quotas.check_request(ctx, None)  # the tenant's request rate, as for API calls
    return ConsoleUser(ctx, cookie, services.console.csrf_token(cookie))


async def console_operator(request: Request, services: ServicesDep) -> ConsoleOperator:
    cookie = request.cookies.get(PLATFORM_COOKIE)
    operator = await services.console.platform_resolve(cookie, request_id=request.state.request_id)
    assert cookie is not None
    request.state.principal_id = f"platform:{operator.key_id}"
    return ConsoleOperator(operator, cookie, services.console.csrf_token(cookie))


async def form_text(request: Request, name: str) -> str:
    """A text field of the posted form ('' when absent)."""
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else ""


async def console_form_user(
    request: Request, services: ServicesDep, user: Annotated[ConsoleUser, Depends(console_user)]
) -> ConsoleUser:
    """A signed-in user posting a form: its CSRF token is checked before anything else runs."""
    services.console.check_csrf(user.cookie, await form_text(request, "csrf"))
    return user


async def console_form_operator(
    request: Request, services: ServicesDep, op: Annotated[ConsoleOperator, Depends(console_operator)]
) -> ConsoleOperator:
    services.console.check_csrf(op.cookie, await form_text(request, "csrf"))
    return op


User = Annotated[ConsoleUser, Depends(console_user)]
FormUser = Annotated[ConsoleUser, Depends(console_form_user)]
Operator = Annotated[ConsoleOperator, Depends(console_operator)]
FormOperator = Annotated[ConsoleOperator, Depends(console_form_operator)]


def login_csrf(request: Request) -> str:
    """The sign-in form's token: the one in the browser's login cookie, or a new one."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    return current if 20 <= len(current) <= 100 else secrets.token_urlsafe(32)


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int) -> None:
    """HttpOnly, SameSite=Strict, path /console, and Secure whenever the console is served over TLS."""
    response.set_cookie(
        name, value, max_age=max_age, path=PATH, secure=request.url.scheme == "https", httponly=True,
        samesite="strict",
    )  # fmt: skip


class ConsoleRoute(APIRoute):
    """Render refusals as pages; send a browser without a live session to the sign-in form."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Unauthenticated as exc:
                if request.method == "GET":
                    platform = request.url.path.startswith(f"{PATH}/platform")
                    target = f"{PATH}/platform/login" if platform else f"{PATH}/login"
                    return security_headers(RedirectResponse(target, status_code=303))
                return _error(401, exc.code, exc.message)
            except TenantgateError as exc:
                response = _error(status_for(exc.code), exc.code, exc.message)
                if isinstance(exc, QuotaExceeded):
                    response.headers.update(quota_headers(exc.fields))
                return response
            except RequestValidationError:
                return _error(422, "invalid_input", "The form or address is not valid; nothing was changed.")

        return handler


def _error(status: int, code: str, message: str) -> Response:
    return render("error.html", status_code=status, code=code, message=message, status=status)
