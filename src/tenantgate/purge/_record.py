"""The purge record: a request, its progress, and the final report an operator reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tenantgate.errors import Conflict, InvalidInput, NotFound

__all__ = [
    "STEPS",
    "PurgeConfirmationRequired",
    "PurgeConflict",
    "PurgeNotDue",
    "PurgeNotFound",
    "PurgeRecord",
    "PurgeState",
]

# Execution, in order. Each is idempotent and recorded when done, so a rerun after a crash
# skips what finished and continues inside the step that was interrupted.
STEPS = ("disable", "keys", "rows", "storage", "audit", "tombstone", "report")


class PurgeState(StrEnum):
    REQUESTED = "requested"
    CANCELLED = "cancelled"
    EXECUTING = "executing"
    COMPLETED = "completed"


class PurgeNotFound(NotFound):
    """No purge of this tenant is requested: request one with a reason first."""

    code = "purge_not_found"


class PurgeConflict(Conflict):
    """The tenant's purge is not in a state that allows this."""

    code = "purge_conflict"


class PurgeNotDue(Conflict):
    """The purge's grace period has not passed: wait, or execute now with confirmation."""

    code = "purge_not_due"


class PurgeConfirmationRequired(InvalidInput):
    """Executing a purge now needs confirmation: give the tenant's name as ``confirm``."""

    code = "purge_confirmation_required"


@dataclass(frozen=True, slots=True)
class PurgeRecord:
    """One purge of one tenant: who asked, why, when it may run, what it has done."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    state: PurgeState
    reason: str
    requested_by: str
    requested_at: datetime
    execute_after: datetime
    cancelled_by: str | None
    cancelled_at: datetime | None
    executed_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: tuple[str, ...]
    report: dict[str, Any]

    @classmethod
    def of(cls, row: Any) -> PurgeRecord:
        return cls(
            id=row.id, tenant_id=row.tenant_id, state=PurgeState(row.state), reason=row.reason,
            requested_by=row.requested_by, requested_at=row.requested_at, execute_after=row.execute_after,
            cancelled_by=row.cancelled_by, cancelled_at=row.cancelled_at, executed_by=row.executed_by,
            started_at=row.started_at, finished_at=row.finished_at, steps=tuple(row.steps), report=dict(row.report),
        )  # fmt: skip

    @property
    def rows_deleted(self) -> int:
        return sum(int(n) for n in self.report.get("rows", {}).values())
