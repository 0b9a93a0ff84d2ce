"""Human confirmations of high-impact calls: list, look at, approve, deny."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.context import PrincipalKind
from tenantgate.gate import ConfirmationInfo, ConfirmationStatus

router = APIRouter(prefix="/v1/confirmations", tags=["confirmations"], responses=ERROR_RESPONSES)


class ConfirmationOut(BaseModel):
    id: uuid.UUID
    tool: str
    arguments: dict[str, Any]
    status: ConfirmationStatus
    requested_by: uuid.UUID
    requested_kind: PrincipalKind
    created_at: datetime
    expires_at: datetime
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    used_at: datetime | None

    @classmethod
    def of(cls, c: ConfirmationInfo) -> ConfirmationOut:
        return cls(
            id=c.id, tool=c.tool, arguments=c.arguments, status=c.status, requested_by=c.requested_by,
            requested_kind=c.requested_kind, created_at=c.created_at, expires_at=c.expires_at,
            decided_by=c.decided_by, decided_at=c.decided_at, used_at=c.used_at,
        )  # fmt: skip


@router.get("", response_model=list[ConfirmationOut])
async def pending(ctx: Caller, services: ServicesDep) -> list[ConfirmationOut]:
    """Confirmations waiting for a human, oldest first, with the exact tool and arguments."""
    return [ConfirmationOut.of(c) for c in await services.confirmations.pending(ctx)]


@router.get("/{confirmation_id}", response_model=ConfirmationOut, responses=error_responses(404))
async def get(confirmation_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> ConfirmationOut:
    return ConfirmationOut.of(await services.confirmations.get(ctx, confirmation_id))


@router.post("/{confirmation_id}/approve", response_model=ConfirmationOut, responses=error_responses(404, 409))
async def approve(confirmation_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> ConfirmationOut:
    """A human user with the tool's role approves; the caller may then run that exact call once."""
    return ConfirmationOut.of(await services.confirmations.approve(ctx, confirmation_id))


@router.post("/{confirmation_id}/deny", response_model=ConfirmationOut, responses=error_responses(404, 409))
async def deny(confirmation_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> ConfirmationOut:
    return ConfirmationOut.of(await services.confirmations.deny(ctx, confirmation_id))
