"""Alerts and alert settings in PostgreSQL: tenant-scoped (RLS), one alert per rule window.

The unique key ``(tenant_id, rule, subject, window_start)`` decides which process's
finding becomes the alert: an insert that meets it does nothing. Every change a tenant
makes (settings, acknowledgement) and every alert raised is audited in its transaction.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tenantgate.alerts._rules import AlertSettings, Rule, RuleSettings
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import Role, TenantContext
from tenantgate.errors import InvalidInput, NotFound, RoleRequired
from tenantgate.store import Database, tables

__all__ = ["MAX_ALERTS_PAGE", "AlertInfo", "AlertStore", "Finding"]

_a, _s = tables.alerts, tables.alert_settings
MAX_ALERTS_PAGE = 500


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule window whose count reached the threshold: what an alert is raised from."""

    rule: Rule
    subject: str
    window_start: datetime
    settings: RuleSettings
    summary: str


@dataclass(frozen=True, slots=True)
class AlertInfo:
    tenant_id: uuid.UUID
    id: uuid.UUID
    rule: str
    subject: str
    window_start: datetime
    window_s: int
    threshold: int
    severity: str
    summary: str
    status: str
    response: str | None
    response_result: str | None
    notified_at: datetime | None
    notify_attempts: int
    notify_error: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: uuid.UUID | None

    def as_json(self) -> dict[str, Any]:
        """The notification body's ``data``: ids and counts, nothing from arguments or payloads."""
        return {
            "alert_id": str(self.id), "tenant_id": str(self.tenant_id), "rule": self.rule, "subject": self.subject,
            "severity": self.severity, "summary": self.summary, "window_start": self.window_start.isoformat(),
            "window_s": self.window_s, "threshold": self.threshold, "response": self.response,
            "created_at": self.created_at.isoformat(),
        }  # fmt: skip


def _info(row: Any) -> AlertInfo:
    m = row._mapping
    return AlertInfo(**{name: m[name] for name in AlertInfo.__dataclass_fields__})


def _require_reader(ctx: TenantContext) -> None:
    if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
        raise RoleRequired("Alerts are for the owner or admin role.", required=["owner", "admin"])


require_manager = _require_reader  # reading and managing alerts need the same roles


class AlertStore:
    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    # --- settings ----------------------------------------------------------------------------

    async def settings(self, ctx: TenantContext) -> AlertSettings:
        """The tenant's settings document (the defaults when it never set one). Owner or admin."""
        _require_reader(ctx)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(sa.select(_s.c.settings).where(_s.c.tenant_id == ctx.tenant_id))
            ).scalar_one_or_none()
        return AlertSettings.model_validate(row) if row is not None else AlertSettings()

    async def set_settings(self, ctx: TenantContext, document: AlertSettings | dict[str, Any]) -> AlertSettings:
        """Replace the tenant's settings. Owner or admin; a bad document changes nothing."""
        require_manager(ctx)
        if not isinstance(document, AlertSettings):
            try:
                document = AlertSettings.model_validate(document)
            except ValidationError as exc:
                errors = [
                    {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)
                ]
                raise InvalidInput("The alert settings are not valid.", errors=errors) from None
        stored = document.model_dump(mode="json", exclude_defaults=True)
        values = {"tenant_id": ctx.tenant_id, "settings": stored, "updated_at": sa.func.now(),
                  "updated_by": ctx.principal_id}  # fmt: skip
        upsert = pg_insert(_s).values(values)
        upsert = upsert.on_conflict_do_update(index_elements=[_s.c.tenant_id], set_={
            "settings": upsert.excluded.settings, "updated_at": upsert.excluded.updated_at,
            "updated_by": upsert.excluded.updated_by,
        })  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            await conn.execute(upsert)
            await self._audit.append(conn, ctx, AuditEvent("alert_settings.changed", payload={"settings": stored}))
        return document

    # --- alerts ------------------------------------------------------------------------------

    async def raise_alert(self, ctx: TenantContext, finding: Finding) -> AlertInfo | None:
        """Insert the window's alert, audited; None if another process (or event) raised it already."""
        rule = finding.settings
        response = rule.response if rule.response != "none" else None
        insert = (
            pg_insert(_a)
            .values(
                tenant_id=ctx.tenant_id, id=uuid.uuid4(), rule=finding.rule.value, subject=finding.subject,
                window_start=finding.window_start, window_s=rule.window_s, threshold=rule.threshold,
                severity=rule.severity.value, summary=finding.summary[:500], status="open", response=response,
                notify_attempts=0, created_at=sa.func.now(),
            )
            .on_conflict_do_nothing(index_elements=[_a.c.tenant_id, _a.c.rule, _a.c.subject, _a.c.window_start])
            .returning(*_a.c)
        )  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(insert)).one_or_none()
            if row is None:
                return None
            alert = _info(row)
            event = AuditEvent(
                "alert.raised", code=alert.rule,
                payload={"alert_id": str(alert.id), "rule": alert.rule, "subject": alert.subject,
                         "window_start": alert.window_start.isoformat(), "threshold": alert.threshold,
                         "severity": alert.severity},
            )  # fmt: skip
            await self._audit.append(conn, ctx, event)
        return alert

    async def list(
        self, ctx: TenantContext, *, status: str | None = None, rule: str | None = None, limit: int = 100
    ) -> list[AlertInfo]:
        """The tenant's alerts, newest first."""
        _require_reader(ctx)
        if not 1 <= limit <= MAX_ALERTS_PAGE:
            raise InvalidInput(f"limit is between 1 and {MAX_ALERTS_PAGE}.")
        if status is not None and status not in ("open", "acknowledged"):
            raise InvalidInput("status is open or acknowledged.")
        query = sa.select(_a).where(_a.c.tenant_id == ctx.tenant_id).order_by(_a.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(_a.c.status == status)
        if rule is not None:
            query = query.where(_a.c.rule == rule)
        async with self._db.tenant(ctx) as conn:
            return [_info(r) for r in await conn.execute(query)]

    async def get(self, ctx: TenantContext, alert_id: uuid.UUID) -> AlertInfo:
        _require_reader(ctx)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(sa.select(_a).where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == alert_id))
            ).one_or_none()
        if row is None:
            raise NotFound("No such alert.")
        return _info(row)

    async def acknowledge(self, ctx: TenantContext, alert_id: uuid.UUID) -> AlertInfo:
        """Mark an alert as seen (once; acknowledging again changes nothing). Owner or admin."""
        require_manager(ctx)
        update = (
            sa.update(_a)
            .where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == alert_id, _a.c.status == "open")
            .values(status="acknowledged", acknowledged_at=sa.func.now(), acknowledged_by=ctx.principal_id)
            .returning(*_a.c)
        )
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(update)).one_or_none()
            if row is None:
                current = (
                    await conn.execute(sa.select(_a).where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == alert_id))
                ).one_or_none()
                if current is None:
                    raise NotFound("No such alert.")
                return _info(current)
            alert = _info(row)
            await self._audit.append(
                conn, ctx, AuditEvent("alert.acknowledged", payload={"alert_id": str(alert_id), "rule": alert.rule})
            )
        return alert

    async def delivered(self, ctx: TenantContext, alert_id: uuid.UUID, *, error: str | None) -> None:
        """Count one notification attempt; set ``notified_at`` when it succeeded."""
        values: dict[str, Any] = {"notify_attempts": _a.c.notify_attempts + 1, "notify_error": error}
        if error is None:
            values["notified_at"] = datetime.now(UTC)
        async with self._db.tenant(ctx) as conn:
            await conn.execute(sa.update(_a).where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == alert_id).values(values))

    async def responded(self, ctx: TenantContext, alert_id: uuid.UUID, result: str) -> None:
        async with self._db.tenant(ctx) as conn:
            await conn.execute(
                sa.update(_a).where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == alert_id).values(response_result=result)
            )

    # --- the platform's view -----------------------------------------------------------------

    async def platform_list(
        self, *, tenant_id: uuid.UUID | None = None, status: str | None = None, limit: int = 100
    ) -> builtins.list[AlertInfo]:
        """Alerts across tenants, newest first (admin role: for platform operators only)."""
        if not 1 <= limit <= MAX_ALERTS_PAGE:
            raise InvalidInput(f"limit is between 1 and {MAX_ALERTS_PAGE}.")
        query = sa.select(_a).order_by(_a.c.created_at.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(_a.c.tenant_id == tenant_id)
        if status is not None:
            query = query.where(_a.c.status == status)
        async with self._db.admin() as conn:
            return [_info(r) for r in await conn.execute(query)]
