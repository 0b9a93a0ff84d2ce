"""Tenant lifecycle: platform operations over the tenants table."""

from tenantgate.tenants._service import Tenant, TenantService, TenantStatus

__all__ = ["Tenant", "TenantService", "TenantStatus"]
