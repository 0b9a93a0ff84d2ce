"""How many schedules a tenant may hold and how often they may run, per deployment mode.

saas defaults are conservative (every run costs the platform a model call); self_hosted
defaults are generous (the operator pays for their own runs). Each can be overridden by
a setting; the installation builds the limits once from :class:`Settings`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, TenantContext

__all__ = ["ScheduleLimits", "TenantCap"]

# A tenant's own cap on a kind of schedule (from its quota plan: ``Quotas.cap``).
TenantCap = Callable[[TenantContext], Awaitable[int]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleLimits:
    """Caps on cron jobs and heartbeat tasks per tenant."""

    max_cron_jobs: int
    min_cron_interval_seconds: int
    max_heartbeat_tasks: int
    min_heartbeat_interval_seconds: int

    @classmethod
    def defaults(cls, mode: DeploymentMode) -> ScheduleLimits:
        if mode is DeploymentMode.SAAS:
            return cls(max_cron_jobs=20, min_cron_interval_seconds=300,
                       max_heartbeat_tasks=10, min_heartbeat_interval_seconds=900)  # fmt: skip
        return cls(max_cron_jobs=1000, min_cron_interval_seconds=60,
                   max_heartbeat_tasks=200, min_heartbeat_interval_seconds=60)  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Settings) -> ScheduleLimits:
        """The mode's defaults, with whatever the operator set explicitly."""
        limits = cls.defaults(settings.mode)
        overrides = {
            "max_cron_jobs": settings.cron_max_jobs,
            "min_cron_interval_seconds": settings.cron_min_interval_seconds,
            "max_heartbeat_tasks": settings.heartbeat_max_tasks,
            "min_heartbeat_interval_seconds": settings.heartbeat_min_interval_seconds,
        }
        return replace(limits, **{k: v for k, v in overrides.items() if v is not None})
