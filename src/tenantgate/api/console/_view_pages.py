"""Console pages that read: the audit trail (with the chain check), runs and their timelines, usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from tenantgate.api._deps import ServicesDep
from tenantgate.api.console._render import render, security_headers
from tenantgate.api.console._session import ConsoleRoute, User
from tenantgate.errors import InvalidInput, NotFound

__all__ = ["router"]

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

_PAGE = 100
Text = Annotated[str, Query(max_length=100)]


def _time(value: str, name: str) -> datetime | None:
    """A ``datetime-local`` form value (read as UTC) or an ISO time with its zone; '' for none."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: give a time as YYYY-MM-DDTHH:MM (UTC).") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _principal(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("principal: give a principal id (a UUID).") from None


@router.get("/audit")
async def audit(
    user: User,
    services: ServicesDep,
    action: Text = "",
    decision: Text = "",
    principal: Text = "",
    since: Text = "",
    until: Text = "",
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The tenant's audit trail, filtered, with whether its hash chain verifies (owners and admins)."""
    records = await services.audit.page(
        user.ctx, action=action or None, decision=decision or None, principal_id=_principal(principal),
        since=_time(since, "since"), until=_time(until, "until"), after_seq=after, limit=_PAGE,
    )  # fmt: skip
    # Read access is checked by page() above; the chain walk then proves the events unaltered.
    report = await services.audit.verify(user.ctx.tenant_id)
    filters = {"action": action, "decision": decision, "principal": principal, "since": since, "until": until}
    next_after = records[-1].seq if len(records) == _PAGE else None
    return render("audit.html", user=user, active="audit", records=records, report=report, filters=filters,
                  next_after=next_after)  # fmt: skip


@router.get("/audit/{seq}")
async def audit_event(seq: int, user: User, services: ServicesDep) -> Response:
    """One event: every field, its payload as stored (already redacted when written) and its hashes."""
    found = await services.audit.page(user.ctx, after_seq=max(seq - 1, 0), limit=1) if seq >= 1 else []
    if not found or found[0].seq != seq:
        raise NotFound("No such audit event in this tenant.")
    record = found[0]
    payload = None if record.payload is None else services.redactor.redact(dict(record.payload))
    return render("audit_event.html", user=user, active="audit", record=record, payload=payload)


@router.get("/runs")
async def runs(user: User, services: ServicesDep) -> Response:
    """Recent runs: all of the tenant's for owners and admins, a member's own otherwise."""
    found = await services.runtime.runs.list(user.ctx, limit=100)
    return render("runs.html", user=user, active="runs", runs=found)


@router.get("/runs/{run_id}")
async def run(run_id: uuid.UUID, user: User, services: ServicesDep) -> Response:
    """A run and its event timeline; the page polls the status while the run is not finished."""
    found = await services.runtime.runs.get(user.ctx, run_id)
    return render("run.html", user=user, active="runs", run=found)


@router.get("/runs/{run_id}/status")
async def run_status(run_id: uuid.UUID, user: User, services: ServicesDep) -> Response:
    found = await services.runtime.runs.get(user.ctx, run_id, with_events=False)
    return security_headers(JSONResponse({"status": found.status.value, "steps": found.steps}))


@router.get("/usage")
async def usage(user: User, services: ServicesDep) -> Response:
    """Budgets and per-minute rates against the tenant's limits."""
    current = await services.quotas.usage(user.ctx)
    return render("usage.html", user=user, active="usage", usage=current)
