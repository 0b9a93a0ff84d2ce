"""Tenants: created, listed and suspended by platform operations (the admin role)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.errors import Conflict, InvalidInput, NotFound
from tenantgate.logs import get_logger
from tenantgate.store import Database, tables

__all__ = ["Tenant", "TenantService", "TenantStatus"]

_t = tables.tenants
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_log = get_logger("tenantgate.tenants")


class TenantStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PURGING = "purging"  # a purge was requested: every credential is refused (tenantgate.purge)
    PURGED = "purged"  # a tombstone: the purge ran


@dataclass(frozen=True, slots=True)
class Tenant:
    id: uuid.UUID
    name: str
    display_name: str
    status: TenantStatus
    created_at: datetime


def _tenant(row: sa.Row[tuple[object, ...]]) -> Tenant:
    m = row._mapping
    return Tenant(m["id"], m["name"], m["display_name"], TenantStatus(m["status"]), m["created_at"])


class TenantService:
    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def create(
        self,
        name: str,
        *,
        display_name: str | None = None,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> Tenant:
        """A new active tenant, recorded on the platform chain (``actor``: the platform key, if any)."""
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                "A tenant name is 1-63 lowercase letters, digits and hyphens, starting with a letter or digit."
            )
        if display_name is not None and not 1 <= len(display_name) <= 200:
            raise InvalidInput("A display name is 1 to 200 characters.")
        try:
            async with self._db.admin() as conn:
                row = (
                    await conn.execute(
                        sa.insert(_t)
                        .values(id=uuid.uuid4(), name=name, display_name=display_name or name, status="active")
                        .returning(*_t.c)
                    )
                ).one()
                event = AuditEvent("tenant.created", payload={"tenant_id": str(row.id), "name": name})
                await self._audit.append_platform(conn, event, request_id=request_id, actor=actor)
        except IntegrityError as exc:
            raise Conflict(f"A tenant named {name!r} already exists.") from exc
        _log.info("tenant.created", tenant_id=str(row.id), name=name)
        return _tenant(row)

    async def list(self) -> list[Tenant]:
        async with self._db.admin() as conn:
            return [_tenant(r) for r in await conn.execute(sa.select(_t).order_by(_t.c.created_at, _t.c.id))]

    async def get(self, tenant_id: uuid.UUID) -> Tenant:
        async with self._db.admin() as conn:
            row = (await conn.execute(sa.select(_t).where(_t.c.id == tenant_id))).one_or_none()
        if row is None:
            raise NotFound("No such tenant.")
        return _tenant(row)

    async def set_status(
        self,
        tenant_id: uuid.UUID,
        status: TenantStatus,
        *,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> Tenant:
        """Suspend or resume a tenant, recorded on the platform chain."""
        if status not in (TenantStatus.ACTIVE, TenantStatus.SUSPENDED):
            raise InvalidInput("Only a purge request moves a tenant to purging or purged.")
        # A tenant being purged (or purged) stays so: only cancelling the purge brings it back.
        settable = _t.c.status.in_([TenantStatus.ACTIVE.value, TenantStatus.SUSPENDED.value])
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.update(_t).where(_t.c.id == tenant_id, settable).values(status=status.value).returning(*_t.c)
                )
            ).one_or_none()
            if row is None:
                if (await conn.execute(sa.select(_t.c.status).where(_t.c.id == tenant_id))).first() is not None:
                    raise Conflict("This tenant is being purged or was purged; cancel the purge to resume it.")
                raise NotFound("No such tenant.")
            action = "tenant.suspended" if status is TenantStatus.SUSPENDED else "tenant.resumed"
            event = AuditEvent(action, payload={"tenant_id": str(tenant_id)})
            await self._audit.append_platform(conn, event, request_id=request_id, actor=actor)
        _log.info("tenant.status", tenant_id=str(tenant_id), status=status.value)
        return _tenant(row)
