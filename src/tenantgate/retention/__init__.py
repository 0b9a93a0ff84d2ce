"""Retention by data class: per-tenant periods over platform defaults, applied by a batched job."""

from tenantgate.retention._classes import MAX_DAYS, VERSION_CHILDREN, DataClass, RetentionDefaults
from tenantgate.retention._job import ClassReport, Progress, RetentionJob, RetentionReport, TenantReport
from tenantgate.retention._settings import (
    DEFAULT,
    ClassRetention,
    RetentionBelowCompliance,
    RetentionSettings,
    TenantRetention,
)

__all__ = [
    "DEFAULT",
    "MAX_DAYS",
    "VERSION_CHILDREN",
    "ClassReport",
    "ClassRetention",
    "DataClass",
    "Progress",
    "RetentionBelowCompliance",
    "RetentionDefaults",
    "RetentionJob",
    "RetentionReport",
    "RetentionSettings",
    "TenantReport",
    "TenantRetention",
]
