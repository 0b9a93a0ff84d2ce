"""Each tenant's retention: the platform's defaults, the tenant's overrides, its compliance floors.

Resolution per class: the tenant's override (a row in ``retention_settings``; days NULL is
"keep forever"), else the platform default; then a compliance floor raises a shorter period
to the floor. A tenant cannot set a period under its floor: that is refused, nothing changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import Role, TenantContext
from tenantgate.errors import InvalidInput, NotFound, RoleRequired
from tenantgate.retention._classes import MAX_DAYS, DataClass, RetentionDefaults
from tenantgate.store import Database, tables

__all__ = ["DEFAULT", "ClassRetention", "RetentionBelowCompliance", "RetentionSettings", "TenantRetention"]

_r, _t = tables.retention_settings, tables.tenants
DEFAULT: Literal["default"] = "default"  # a change that drops the tenant's override
Source = Literal["default", "tenant", "compliance"]


class RetentionBelowCompliance(InvalidInput):
    """The period is shorter than the tenant's compliance mode keeps this data class; nothing was changed."""

    code = "retention_below_compliance"


@dataclass(frozen=True, slots=True)
class ClassRetention:
    """One class's effective period (days; None: forever) and where it came from."""

    data_class: DataClass
    days: int | None
    source: Source
    default_days: int | None
    override: bool
    floor_days: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "days": self.days, "source": self.source, "default_days": self.default_days,
            "override": self.override, "floor_days": self.floor_days,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class TenantRetention:
    tenant_id: uuid.UUID
    compliance_mode: str
    classes: Mapping[DataClass, ClassRetention]

    def days(self, data_class: DataClass) -> int | None:
        return self.classes[data_class].days


def _check_days(data_class: DataClass, value: object) -> int | Literal["default"] | None:
    if value is None:
        return None
    if value == DEFAULT:
        return DEFAULT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise InvalidInput(
            f"{data_class.value}: give whole days from 1 to {MAX_DAYS}, null to keep forever, "
            f'or "default" for the platform\'s default; not {value!r}.'
        )
    return value


class RetentionSettings:
    """Reads and sets tenants' retention periods. Floors: compliance mode -> class -> fewest days."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        defaults: RetentionDefaults,
        floors: Mapping[str, Mapping[str, int]] | None = None,
    ) -> None:
        self._db, self._audit = db, audit
        self.defaults = defaults
        self._floors = floors or {}

    def resolve(self, tenant_id: uuid.UUID, mode: str, overrides: Mapping[str, int | None]) -> TenantRetention:
        """The effective periods for a tenant in ``mode`` with these overrides (class -> days or None)."""
        floors = self._floors.get(mode, {})
        classes: dict[DataClass, ClassRetention] = {}
        for data_class in DataClass:
            default = self.defaults.days[data_class]
            override = data_class.value in overrides
            days = overrides[data_class.value] if override else default
            floor = floors.get(data_class.value)
            source: Source = "tenant" if override else "default"
            if floor is not None and days is not None and days < floor:
                days, source = floor, "compliance"
            classes[data_class] = ClassRetention(data_class, days, source, default, override, floor)
        return TenantRetention(tenant_id, mode, classes)

    async def get(self, ctx: TenantContext) -> TenantRetention:
        """``ctx``'s tenant's retention (any member may read it)."""
        async with self._db.tenant(ctx) as conn:
            return await self._read(conn, ctx.tenant_id)

    async def all_tenants(self) -> list[TenantRetention]:
        """Every tenant's retention (admin role; for the retention job)."""
        async with self._db.admin() as conn:
            tenants = (await conn.execute(sa.select(_t.c.id, _t.c.compliance_mode).order_by(_t.c.created_at))).all()
            rows = (await conn.execute(sa.select(_r.c.tenant_id, _r.c.data_class, _r.c.days))).all()
        overrides: dict[uuid.UUID, dict[str, int | None]] = {}
        for row in rows:
            overrides.setdefault(row.tenant_id, {})[row.data_class] = row.days
        return [self.resolve(t.id, t.compliance_mode, overrides.get(t.id, {})) for t in tenants]

    async def set(self, ctx: TenantContext, changes: Mapping[str, object]) -> TenantRetention:
        """Override (days, or None for forever) or reset (``"default"``) classes; owner or admin; audited."""
        if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
            raise RoleRequired("Setting retention needs the owner or admin role.", required=["owner", "admin"])
        if not changes:
            raise InvalidInput(f"Nothing to set: name one or more of {', '.join(c.value for c in DataClass)}.")
        unknown = sorted(set(changes) - {c.value for c in DataClass})
        if unknown:
            raise InvalidInput(f"Unknown data classes {unknown}; known: {[c.value for c in DataClass]}.")
        checked = {DataClass(name): _check_days(DataClass(name), value) for name, value in changes.items()}
        async with self._db.tenant(ctx) as conn:
            current = await self._read(conn, ctx.tenant_id)
            floors = self._floors.get(current.compliance_mode, {})
            for data_class, days in checked.items():
                floor = floors.get(data_class.value)
                if floor is not None and isinstance(days, int) and days < floor:
                    raise RetentionBelowCompliance(
                        f"{data_class.value}: the tenant's compliance mode ({current.compliance_mode}) keeps it at "
                        f"least {floor} days; {days} is too short.",
                        data_class=data_class.value, floor_days=floor,
                    )  # fmt: skip
            for data_class, days in checked.items():
                await conn.execute(
                    sa.delete(_r).where(_r.c.tenant_id == ctx.tenant_id, _r.c.data_class == data_class.value)
                )
                if days != DEFAULT:
                    await conn.execute(
                        sa.insert(_r).values(
                            tenant_id=ctx.tenant_id, data_class=data_class.value, days=days,
                            updated_at=sa.func.now(), updated_by=ctx.principal_id,
                        )
                    )  # fmt: skip
            payload = {"changes": {c.value: days for c, days in checked.items()}}
            await self._audit.append(conn, ctx, AuditEvent(action="retention.set", payload=payload))
            return await self._read(conn, ctx.tenant_id)

    async def _read(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> TenantRetention:
        mode = (await conn.execute(sa.select(_t.c.compliance_mode).where(_t.c.id == tenant_id))).scalar_one_or_none()
        if mode is None:
            raise NotFound("No such tenant.")
        rows = await conn.execute(sa.select(_r.c.data_class, _r.c.days).where(_r.c.tenant_id == tenant_id))
        return self.resolve(tenant_id, mode, {row.data_class: row.days for row in rows})
