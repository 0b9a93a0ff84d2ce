"""Alerts: a tenant reads and acknowledges its own and sets its rules and sinks; the platform sees all."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tenantgate.alerts import DEFAULTS, MAX_ALERTS_PAGE, AlertInfo, AlertSettings
from tenantgate.api._deps import Caller, Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["alerts"], responses=ERROR_RESPONSES)

Status = Literal["open", "acknowledged"]
Limit = Annotated[int, Query(ge=1, le=MAX_ALERTS_PAGE)]


class AlertOut(BaseModel):
    id: uuid.UUID
    tenant_id: uuid.UUID
    rule: str
    subject: str
    severity: str
    summary: str
    status: str
    window_start: datetime
    window_s: int
    threshold: int
    response: str | None
    response_result: str | None
    notified_at: datetime | None
    notify_attempts: int
    notify_error: str | None
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: uuid.UUID | None

    @classmethod
    def of(cls, alert: AlertInfo) -> AlertOut:
        return cls.model_validate(alert, from_attributes=True)


class SettingsOut(BaseModel):
    settings: dict[str, Any]  # as stored: what the tenant changed
    effective: dict[str, Any]  # every rule with its defaults applied


def _settings_out(settings: AlertSettings) -> SettingsOut:
    effective = {rule.value: settings.rule(rule).model_dump(mode="json") for rule in DEFAULTS}
    return SettingsOut(settings=settings.model_dump(mode="json", exclude_defaults=True), effective=effective)


@router.get("/alerts", response_model=list[AlertOut])
async def list_alerts(
    ctx: Caller, services: ServicesDep, status: Status | None = None, rule: str | None = None, limit: Limit = 100
) -> list[AlertOut]:
    """This tenant's alerts, newest first. Owner or admin."""
    return [AlertOut.of(a) for a in await services.alerts.store.list(ctx, status=status, rule=rule, limit=limit)]


@router.get("/alerts/{alert_id}", response_model=AlertOut, responses=error_responses(404))
async def get_alert(alert_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> AlertOut:
    return AlertOut.of(await services.alerts.store.get(ctx, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut, responses=error_responses(404))
async def acknowledge_alert(alert_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> AlertOut:
    """Mark an alert as seen (audited). Owner or admin."""
    return AlertOut.of(await services.alerts.store.acknowledge(ctx, alert_id))


@router.get("/alert-settings", response_model=SettingsOut)
async def get_alert_settings(ctx: Caller, services: ServicesDep) -> SettingsOut:
    """Thresholds, automatic responses and sinks: what this tenant set, and the effective rules."""
    return _settings_out(await services.alerts.settings(ctx))


@router.put("/alert-settings", response_model=SettingsOut)
async def put_alert_settings(body: dict[str, Any], ctx: Caller, services: ServicesDep) -> SettingsOut:
    """Replace this tenant's alert settings (audited). Owner or admin; a bad document changes nothing."""
    return _settings_out(await services.alerts.set_settings(ctx, body))


@router.get("/platform/alerts", response_model=list[AlertOut], tags=["platform"])
async def platform_alerts(
    op: Operator,
    services: ServicesDep,
    tenant_id: uuid.UUID | None = None,
    status: Status | None = None,
    limit: Limit = 100,
) -> list[AlertOut]:
    """Alerts across every tenant, newest first (platform keys only)."""
    alerts = await services.alerts.store.platform_list(tenant_id=tenant_id, status=status, limit=limit)
    return [AlertOut.of(a) for a in alerts]
