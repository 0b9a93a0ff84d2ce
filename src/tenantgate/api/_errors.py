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

__all__ = ["ERROR_RESPONSES", "ErrorBody", "install_error_handlers", "status_for", "unavailable_headers"]

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
_HTTP_CODES = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed", 415: "invalid_input"}


class ErrorBody(BaseModel):
    """Every error response."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, invalid, expired or revoked credential"},
    403: {"model": ErrorBody, "description": "Authenticated, but not allowed"},
    422: {"model": ErrorBody, "description": "Invalid input; nothing was changed"},
    503: {"model": ErrorBody, "description": "A control-plane dependency is down; refused"},
}


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
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _body(code, str(exc.detail), exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("request.unhandled", error_type=type(exc).__name__)
        return _body("internal_error", "Internal error; the request id is in the X-Request-ID header.", 500)

    app.add_exception_handler(TenantgateError, tenantgate_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
