"""The data classes retention covers, the platform's defaults, and the version tables of soft-deleted rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from tenantgate.config import Settings

__all__ = ["MAX_DAYS", "VERSION_CHILDREN", "DataClass", "RetentionDefaults"]

MAX_DAYS = 36_500  # a hundred years; "keep forever" is None, not a large number


class DataClass(StrEnum):
    """What retention removes, and how: rows deleted, objects deleted, or payloads erased."""

    RUN_EVENTS = "run_events"  # run_events rows, by occurred_at
    MESSAGES = "messages"  # messages rows, by created_at
    ARTIFACTS = "artifacts"  # artifacts rows and their stored objects, by created_at
    AUDIT_PAYLOADS = "audit_payloads"  # audit payloads erased (the chain and digests stay), by occurred_at
    SOFT_DELETED = "soft_deleted"  # rows with deleted_at set, in every tenant table having it, by deleted_at


# Version history tables of soft-deletable parents: parent table -> (version table, its column
# naming the parent's id). When a parent is hard-deleted its versions go first (they hold a
# foreign key to it). A child table absent from the schema is skipped, so entries for tables a
# later migration adds may sit here first; tests/test_retention.py checks this map against the
# catalog's foreign keys, so a version table added without an entry fails the suite.
VERSION_CHILDREN: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "memory_entries": (("memory_versions", "entry_id"),),
        "cron_jobs": (("cron_job_versions", "job_id"),),
        "skills": (("skill_versions", "skill_id"),),
        "heartbeat_tasks": (("heartbeat_task_versions", "task_id"),),
        "credentials": (("credential_versions", "credential_id"),),
    }
)


@dataclass(frozen=True, slots=True)
class RetentionDefaults:
    """The platform's retention per class, in days (None: forever)."""

    days: Mapping[DataClass, int | None]

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionDefaults:
        return cls(
            MappingProxyType(
                {
                    DataClass.RUN_EVENTS: settings.retention_run_events_days,
                    DataClass.MESSAGES: settings.retention_messages_days,
                    DataClass.ARTIFACTS: settings.retention_artifacts_days,
                    DataClass.AUDIT_PAYLOADS: settings.retention_audit_payloads_days,
                    DataClass.SOFT_DELETED: settings.retention_soft_deleted_days,
                }
            )
        )
