"""A version row of a schedule definition (cron job or heartbeat task): what it was, and who changed it how."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["DefinitionVersion"]


@dataclass(frozen=True, slots=True)
class DefinitionVersion:
    version: int
    definition: dict[str, Any]
    change: str
    changed_at: datetime
    changed_by: uuid.UUID

    @classmethod
    def of(cls, row: Any) -> DefinitionVersion:
        return cls(row.version, dict(row.definition), row.change, row.changed_at, row.changed_by)
