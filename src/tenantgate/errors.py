"""The exception tree: one base, machine-readable codes, messages that say what to do.

Security refusals carry a ``code`` that clients can branch on; the HTTP layer maps
codes to status codes in one place (``tenantgate.api._errors``). The message defaults
to the class docstring, as in procrastinate's exceptions.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "CapabilityDenied",
    "ConfigurationError",
    "Conflict",
    "DatabaseUnavailable",
    "EgressDenied",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "QuotaBackendUnavailable",
    "QuotaExceeded",
    "RoleRequired",
    "SecretRejected",
    "TenantgateError",
    "Unauthenticated",
    "WorkspaceEscape",
]


class TenantgateError(Exception):
    """Something went wrong inside tenantgate."""

    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.fields = fields
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{code, message, **fields}``."""
        return {"code": self.code, "message": self.message, **self.fields}


class ConfigurationError(TenantgateError):
    """The configuration is unsafe or incomplete; tenantgate refuses to start."""

    code = "configuration_error"


class Unauthenticated(TenantgateError):
    """Authentication failed: send a valid API key or bearer token in the Authorization header."""

    code = "unauthenticated"


class PermissionDenied(TenantgateError):
    """The authenticated principal is not allowed to do this."""

    code = "permission_denied"


class RoleRequired(PermissionDenied):
    """This action needs a role the caller does not hold."""

    code = "role_required"


class CapabilityDenied(PermissionDenied):
    """This deployment mode does not grant the capability; the tool cannot exist here."""

    code = "capability_denied"


class EgressDenied(PermissionDenied):
    """Outbound HTTP was refused by the egress policy; ``rule`` names the rule that refused it."""

    code = "egress_denied"

    def __init__(self, message: str | None = None, *, rule: str, **fields: Any) -> None:
        self.rule = rule
        super().__init__(message, rule=rule, **fields)


class WorkspaceEscape(PermissionDenied):
    """A workspace tool was asked for a path that leads, or could lead, outside the tenant's workspace."""

    code = "workspace_escape"

    def __init__(self, message: str | None = None, *, reason: str, **fields: Any) -> None:
        self.reason = reason
        super().__init__(message, reason=reason, **fields)


class NotFound(TenantgateError):
    """No such object in the caller's tenant."""

    code = "not_found"


class InvalidInput(TenantgateError):
    """The request is malformed; nothing was changed."""

    code = "invalid_input"


class SecretRejected(InvalidInput):
    """The payload holds a secret where secrets are not allowed; store it as a credential and refer to it."""

    code = "secret_in_payload"


class Conflict(TenantgateError):
    """The request conflicts with the current state; nothing was changed."""

    code = "conflict"


class QuotaExceeded(TenantgateError):
    """A tenant limit was reached; nothing was changed. Remove something first, or ask the operator."""

    code = "quota_exceeded"

    def retry_after(self) -> int | None:
        """Seconds until the limit resets, when the refusal knows it (for ``Retry-After``)."""
        value = self.fields.get("retry_after")
        return int(value) if isinstance(value, int | float) else None


class QuotaBackendUnavailable(TenantgateError):
    """The limit store (Redis or the database) cannot be reached; refused rather than counted as allowed."""

    code = "quota_backend_unavailable"


class DatabaseUnavailable(TenantgateError):
    """The database cannot be reached; the request was refused, not guessed at."""

    code = "database_unavailable"
