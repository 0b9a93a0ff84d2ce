"""tenantgate: a multi-tenant security runtime for AI agents."""

from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import TenantgateError

__version__ = "0.1.0"

__all__ = ["DeploymentMode", "PrincipalKind", "Role", "TenantContext", "TenantgateError", "__version__"]
