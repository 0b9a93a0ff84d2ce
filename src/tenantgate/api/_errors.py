"""Codes to HTTP statuses, in one place; every error body is ``{code, message, ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenantgate.api._ratelimit import quota_headers
from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger

__all__ = [
    "ERROR_RESPONSES",
    "ErrorBody",
    "FieldError",
    "InvalidInputBody",
    "error_responses",
    "install_error_handlers",
    "status_for",
    "unavailable_headers",
]

_log = get_logger("tenantgate.api")

_STATUS = {
    "unauthenticated": 401,
    "permission_denied": 403,
    "role_required": 403,
    "not_found": 404,
    "conflict": 409,
    "invalid_input": 422,
    "secret_in_payload": 422,
    "configuration_error": 500,
    "database_unavailable": 503,
    "policy_unavailable": 503,
    "capability_denied": 403,
    "egress_denied": 403,
    "workspace_escape": 403,
    "credential_unreadable": 500,
    "key_provider_unavailable": 503,
    "quota_exceeded": 429,
    "quota_backend_unavailable": 503,
    "internal_error": 500,
    "vendor_not_eligible": 403,
    "planner_error": 502,
    "idempotency_conflict": 409,
    "directive_not_found": 404,
    "signal_not_found": 404,
    "signal_type_unknown": 422,
    "webhook_rejected": 401,
    "artifact_not_found": 404,
    "artifact_too_large": 413,
    "artifact_url_invalid": 403,
    "artifact_storage_unavailable": 503,
    "retention_below_compliance": 422,
    "purge_not_found": 404,
    "purge_conflict": 409,
    "purge_not_due": 409,
    "purge_confirmation_required": 422,
}
# A 503 means a control-plane dependency (database, rate-limit store, key provider) is down and
# the request was refused; service resumes on its own when it returns. A hint, not a promise.
RETRY_AFTER_S = 5
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 415: "invalid_input"}


class ErrorBody(BaseModel):
    """Every error response: a machine-readable ``code``, a message that says what to do, and fields."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class FieldError(BaseModel):
    """One reason a request did not match the schema."""

    loc: list[str | int]
    msg: str
    type: str


class InvalidInputBody(ErrorBody):
    """A 422: ``errors`` lists each field that failed schema validation; a business-rule refusal has none."""

    errors: list[FieldError] | None = None


_DESCRIBED: dict[int, tuple[type[BaseModel], str]] = {
    401: (ErrorBody, "Missing, invalid, expired or revoked credential"),
    403: (ErrorBody, "Authenticated, but not allowed (role, kill switch, policy)"),
    404: (ErrorBody, "No such resource in the caller's tenant"),
    409: (ErrorBody, "Conflicts with the current state (a name taken, a state that forbids it); nothing changed"),
    413: (ErrorBody, "The request body is larger than allowed"),
    422: (InvalidInputBody, "Invalid input; nothing was changed"),
    429: (ErrorBody, "A rate limit, budget or authentication-failure limit is reached; see Retry-After"),
    502: (ErrorBody, "An upstream (tool or planner) failed"),
    503: (ErrorBody, "A control-plane dependency is down; refused"),
    504: (ErrorBody, "An upstream did not finish in time"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses=`` entries for these error statuses, each with its body model."""
    return {status: {"model": _DESCRIBED[status][0], "description": _DESCRIBED[status][1]} for status in statuses}


# Every authenticated route (tenant or platform credential): refused, forbidden, invalid, limited, unavailable.
ERROR_RESPONSES = error_responses(401, 403, 422, 429, 503)


def status_for(code: str) -> int:
    return _STATUS.get(code, 500)


def unavailable_headers(status: int) -> dict[str, str]:
    """``Retry-After`` for a 503 (a dependency is down and comes back on its own); nothing otherwise."""
    return {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}


def _body(code: str, message: str, status: int, **fields: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"code": code, "message": message, **fields}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def tenantgate_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TenantgateError)
        status = status_for(exc.code)
        if status >= 500:
            _log.error("request.error", code=exc.code, error=exc.message)
        body = exc.as_dict()
        response = _body(body.pop("code"), body.pop("message"), status, **body)
        if status == 429:
            response.headers.update(quota_headers(exc.fields))
        response.headers.update(unavailable_headers(status))
        return response

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return _body("invalid_input", "The request does not match the schema; nothing was changed.", 422,
                     errors=errors)  # fmt: skip

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:
            # FastAPI's "error parsing the body" (bytes that are not UTF-8): invalid input like any other, so a 422
            # of the one documented shape rather than a status no operation declares.
            errors = [{"loc": ["body"], "msg": str(exc.detail), "type": "body_unreadable"}]
            return _body("invalid_input", "The request body could not be read; nothing was changed.", 422,
                         errors=errors)  # fmt: skip
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        response = _body(code, str(exc.detail), exc.status_code)
        if exc.headers:  # e.g. the Allow header of a 405
            response.headers.update(exc.headers)
        return response

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("request.unhandled", error_type=type(exc).__name__)
        return _body("internal_error", "Internal error; the request id is in the X-Request-ID header.", 500)

    app.add_exception_handler(TenantgateError, tenantgate_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
