"""The durable event log: tenant-scoped, deduplicated by key, validated and secret-free."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.redact import Redactor
from tenantgate.signals._types import validate_payload
from tenantgate.store import Database

__all__ = ["Signal", "SignalNotFound", "SignalStore"]


class SignalNotFound(NotFound):
    """No such signal in this tenant."""

    code = "signal_not_found"


@dataclass(frozen=True, slots=True)
class Signal:
    tenant_id: uuid.UUID
    id: uuid.UUID
    type: str
    source: str
    source_event_id: str | None
    dedupe_key: str
    payload: Mapping[str, Any]
    occurred_at: datetime
    recorded_at: datetime
    processed_at: datetime | None


def _signal(row: sa.Row[Any]) -> Signal:
    m = row._mapping
    return Signal(
        tenant_id=m["tenant_id"], id=m["id"], type=m["type"], source=m["source"],
        source_event_id=m["source_event_id"], dedupe_key=m["dedupe_key"], payload=m["payload"],
        occurred_at=m["occurred_at"], recorded_at=m["recorded_at"], processed_at=m["processed_at"],
    )  # fmt: skip


_INSERT = sa.text(
    """
    INSERT INTO tenantgate.signals (tenant_id, id, type, source, source_event_id, dedupe_key, payload, occurred_at)
    VALUES (:tenant_id, :id, :type, :source, :source_event_id, :dedupe_key, CAST(:payload AS jsonb), :occurred_at)
    ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
    RETURNING *
    """
)
_BY_KEY = sa.text("SELECT * FROM tenantgate.signals WHERE tenant_id = :tenant_id AND dedupe_key = :key")
_BY_ID = sa.text("SELECT * FROM tenantgate.signals WHERE tenant_id = :tenant_id AND id = :id")
_PROCESSED = sa.text(
    "UPDATE tenantgate.signals SET processed_at = now()"
    " WHERE tenant_id = :tenant_id AND id = :id AND processed_at IS NULL"
)


class SignalStore:
    """Records signals once per dedupe key; a payload is validated and may hold no secret."""

    def __init__(self, *, db: Database, audit: AuditLog, redactor: Redactor) -> None:
        self._db = db
        self._audit = audit
        self._redactor = redactor

    async def record(
        self,
        ctx: TenantContext,
        *,
        type: str,
        source: str,
        dedupe_key: str,
        payload: Mapping[str, Any],
        occurred_at: datetime,
        source_event_id: str | None = None,
    ) -> tuple[Signal, bool]:
        """The signal for ``dedupe_key``: newly recorded (``True``) or the one recorded before."""
        if not 1 <= len(dedupe_key) <= 400:
            raise InvalidInput("A dedupe key is 1 to 400 characters.")
        clean = validate_payload(type, payload)
        self._redactor.reject_secrets(clean, what="signal payload")
        params = {
            "tenant_id": ctx.tenant_id, "id": uuid.uuid4(), "type": type, "source": source[:200],
            "source_event_id": source_event_id[:300] if source_event_id else None, "dedupe_key": dedupe_key,
            "payload": json.dumps(clean), "occurred_at": occurred_at,
        }  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_INSERT, params)).first()
            if row is None:
                found = (await conn.execute(_BY_KEY, {"tenant_id": ctx.tenant_id, "key": dedupe_key})).one()
                return _signal(found), False
            signal = _signal(row)
            await self._audit.append(
                conn,
                ctx,
                AuditEvent(
                    action="signal.recorded",
                    payload={"signal_id": str(signal.id), "type": type, "source": signal.source},
                ),
            )
        return signal, True

    async def get(self, ctx: TenantContext, signal_id: uuid.UUID) -> Signal:
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_BY_ID, {"tenant_id": ctx.tenant_id, "id": signal_id})).first()
        if row is None:
            raise SignalNotFound(f"No signal {signal_id} in this tenant.")
        return _signal(row)

    async def mark_processed(self, ctx: TenantContext, signal_id: uuid.UUID) -> bool:
        """Note that the subscribers ran; ``False`` if it was processed before (a replay)."""
        async with self._db.tenant(ctx) as conn:
            result = await conn.execute(_PROCESSED, {"tenant_id": ctx.tenant_id, "id": signal_id})
        return bool(result.rowcount)
