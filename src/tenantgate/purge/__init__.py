"""Purge by tenant: two-step (request disables the tenant; execute deletes), catalog-driven, resumable."""

from tenantgate.purge._catalog import KEPT, TenantTable, tenant_tables
from tenantgate.purge._record import (
    STEPS,
    PurgeConfirmationRequired,
    PurgeConflict,
    PurgeNotDue,
    PurgeNotFound,
    PurgeRecord,
    PurgeState,
)
from tenantgate.purge._service import PurgeService

__all__ = [
    "KEPT",
    "STEPS",
    "PurgeConfirmationRequired",
    "PurgeConflict",
    "PurgeNotDue",
    "PurgeNotFound",
    "PurgeRecord",
    "PurgeService",
    "PurgeState",
    "TenantTable",
    "tenant_tables",
]
