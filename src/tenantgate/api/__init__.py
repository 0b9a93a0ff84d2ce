"""The HTTP edge: parsing, authentication dependencies, rendering. No business rules."""

from tenantgate.api._app import create_app
from tenantgate.api._errors import ErrorBody, status_for

__all__ = ["ErrorBody", "create_app", "status_for"]
