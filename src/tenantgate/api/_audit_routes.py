"""``GET /v1/audit``: the caller's own tenant's audit events, for owners and admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES
from tenantgate.audit import MAX_PAGE, AuditRecord

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)


class AuditEventOut(BaseModel):
    """One event of the tenant's hash chain. ``payload`` is null once erased; the hashes are hex."""

    seq: int
    occurred_at: datetime
    action: str
    decision: str | None
    code: str | None
    tool: str | None
    principal_id: uuid.UUID | None
    principal_kind: str | None
    acting_for: uuid.UUID | None
    request_id: str | None
    payload: dict[str, Any] | None
    payload_digest: str
    erased_at: datetime | None
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, r: AuditRecord) -> AuditEventOut:
        return cls(
            seq=r.seq, occurred_at=r.occurred_at, action=r.action, decision=r.decision, code=r.code, tool=r.tool,
            principal_id=r.principal_id, principal_kind=r.principal_kind, acting_for=r.acting_for,
            request_id=r.request_id, payload=None if r.payload is None else dict(r.payload),
            payload_digest=r.payload_digest.hex(), erased_at=r.erased_at, prev_hash=r.prev_hash.hex(),
            hash=r.hash.hex(),
        )  # fmt: skip


class AuditPage(BaseModel):
    events: list[AuditEventOut]
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; null when this page is the last."
    )


@router.get("/audit", response_model=AuditPage)
async def list_audit_events(
    ctx: Caller,
    services: ServicesDep,
    action: Annotated[str | None, Query(max_length=100, description="e.g. key.created")] = None,
    decision: Annotated[str | None, Query(max_length=20, description="allow, deny, confirm, succeeded, ...")] = None,
    principal_id: uuid.UUID | None = None,
    since: Annotated[AwareDatetime | None, Query(description="occurred_at >= since")] = None,
    until: Annotated[AwareDatetime | None, Query(description="occurred_at < until")] = None,
    after_seq: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,  # seq is a bigint
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditPage:
    """The caller's tenant's audit events in chain order (owner or admin). Page on with ``next_after_seq``."""
    records = await services.audit.page(
        ctx, action=action, decision=decision, principal_id=principal_id, since=since, until=until,
        after_seq=after_seq, limit=limit,
    )  # fmt: skip
    next_after = records[-1].seq if len(records) == limit else None
    return AuditPage(events=[AuditEventOut.of(r) for r in records], next_after_seq=next_after)
