"""Tenant schedules: cron jobs and heartbeat tasks, their parsing, next runs and limits."""

from tenantgate.schedules._cron import MAX_MESSAGE_CHARS, NAME_PATTERN, CronJob, CronJobVersion, CronStore
from tenantgate.schedules._heartbeat import HeartbeatStore, HeartbeatTask, HeartbeatTaskVersion
from tenantgate.schedules._limits import ScheduleLimits, TenantCap
from tenantgate.schedules._schedule import MAX_EVERY_SECONDS, Schedule, ScheduleKind
from tenantgate.schedules._versions import DefinitionVersion

__all__ = [
    "MAX_EVERY_SECONDS",
    "MAX_MESSAGE_CHARS",
    "NAME_PATTERN",
    "CronJob",
    "CronJobVersion",
    "CronStore",
    "DefinitionVersion",
    "HeartbeatStore",
    "HeartbeatTask",
    "HeartbeatTaskVersion",
    "Schedule",
    "ScheduleKind",
    "ScheduleLimits",
    "TenantCap",
]
