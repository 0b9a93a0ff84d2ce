"""Human confirmation for high-impact actions (seed 002 §2.3).

A ``confirm`` decision opens a confirmation bound to the tenant, the tool and a digest of
the exact arguments. Only a human (a ``user`` principal) holding the role the tool needs
can approve it; an AI execution context never can. An approved confirmation lets the
same responsible principal run that exact call once, before it expires.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import Conflict, NotFound, PermissionDenied, RoleRequired
from tenantgate.gate._decision import Decision, Verdict
from tenantgate.redact import Redactor
from tenantgate.store import Database, tables
from tenantgate.tools import ToolRegistry

__all__ = ["ConfirmationInfo", "ConfirmationStatus", "Confirmations", "DecisionListener"]

# Told after a human's approval or denial is committed (the runtime resumes the run held on it).
DecisionListener = Callable[[TenantContext, uuid.UUID], Awaitable[None]]

_c = tables.confirmations
DEFAULT_TTL = timedelta(minutes=15)


class ConfirmationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"
    EXPIRED = "expired"  # shown, never stored: a pending or approved one past its expiry


@dataclass(frozen=True, slots=True)
class ConfirmationInfo:
    id: uuid.UUID
    tool: str
    arguments: dict[str, Any]
    args_digest: str
    status: ConfirmationStatus
    requested_by: uuid.UUID
    requested_kind: PrincipalKind
    root_principal: uuid.UUID
    created_at: datetime
    expires_at: datetime
    decided_by: uuid.UUID | None
    decided_at: datetime | None
    used_at: datetime | None


def _info(row: Any, now: datetime) -> ConfirmationInfo:
    status = ConfirmationStatus(row.status)
    if status in (ConfirmationStatus.PENDING, ConfirmationStatus.APPROVED) and row.expires_at <= now:
        status = ConfirmationStatus.EXPIRED
    return ConfirmationInfo(
        row.id, row.tool, row.arguments, row.args_digest, status, row.requested_by,
        PrincipalKind(row.requested_kind), row.root_principal, row.created_at, row.expires_at,
        row.decided_by, row.decided_at, row.used_at,
    )  # fmt: skip


class Confirmations:
    def __init__(
        self,
        *,
        db: Database,
        registry: ToolRegistry,
        audit: AuditLog,
        ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        redactor: Redactor | None = None,
    ) -> None:
        self._db = db
        # The stored arguments are what approvers see: secrets redacted, everything else as
        # asked. The digest stays over the exact arguments, so redemption still binds them.
        self._redactor = redactor if redactor is not None else Redactor()
        self._registry = registry
        self._audit = audit
        self._ttl = ttl
        self._clock = clock
        self._listeners: list[DecisionListener] = []

    def listen(self, listener: DecisionListener) -> None:
        """Call ``listener(ctx, confirmation_id)`` after each approval or denial is committed.

        The gate does not know who waits on a confirmation; an edge wires the agent runtime here.
        """
        self._listeners.append(listener)

    async def request(self, ctx: TenantContext, decision: Decision) -> ConfirmationInfo:
        """Open a confirmation for a ``confirm`` decision."""
        if decision.verdict is not Verdict.CONFIRM or decision.arguments is None or decision.args_digest is None:
            raise ValueError("only a confirm decision with validated arguments opens a confirmation")
        now = self._clock()
        shown = self._redactor.redact(decision.arguments)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.insert(_c)
                    .values(
                        tenant_id=ctx.tenant_id, id=uuid.uuid4(), tool=decision.tool, args_digest=decision.args_digest,
                        arguments=shown, requested_by=ctx.principal_id, requested_kind=ctx.kind.value,
                        root_principal=ctx.root_principal, created_at=now, expires_at=now + self._ttl,
                    )
                    .returning(*_c.c)
                )
            ).one()  # fmt: skip
        return _info(row, now)

    async def get(self, ctx: TenantContext, confirmation_id: uuid.UUID) -> ConfirmationInfo:
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(self._select(ctx, confirmation_id))).one_or_none()
        if row is None:
            raise NotFound("No such confirmation in this tenant.")
        return _info(row, self._clock())

    async def pending(self, ctx: TenantContext) -> list[ConfirmationInfo]:
        """Open confirmations the caller may decide: all for owners and admins, their own for members."""
        now = self._clock()
        query = (
            sa.select(_c)
            .where(_c.c.tenant_id == ctx.tenant_id, _c.c.status == "pending", _c.c.expires_at > now)
            .order_by(_c.c.created_at)
        )
        if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
            query = query.where(_c.c.root_principal == ctx.root_principal)
        async with self._db.tenant(ctx) as conn:
            return [_info(r, now) for r in await conn.execute(query)]

    async def approve(self, ctx: TenantContext, confirmation_id: uuid.UUID) -> ConfirmationInfo:
        return await self._decide(ctx, confirmation_id, ConfirmationStatus.APPROVED)

    async def deny(self, ctx: TenantContext, confirmation_id: uuid.UUID) -> ConfirmationInfo:
        return await self._decide(ctx, confirmation_id, ConfirmationStatus.DENIED)

    async def redeem(self, ctx: TenantContext, confirmation_id: uuid.UUID, decision: Decision) -> bool:
        """Use an approved confirmation for exactly this call, once. False if it does not fit."""
        now = self._clock()
        async with self._db.tenant(ctx) as conn:
            used = await conn.execute(
                sa.update(_c)
                .where(
                    _c.c.tenant_id == ctx.tenant_id, _c.c.id == confirmation_id, _c.c.status == "approved",
                    _c.c.expires_at > now, _c.c.tool == decision.tool, _c.c.args_digest == decision.args_digest,
                    _c.c.root_principal == ctx.root_principal,
                )
                .values(status="used", used_at=now)
            )  # fmt: skip
            if used.rowcount != 1:
                return False
            event = AuditEvent(
                action="confirmation.used",
                decision="allow",
                tool=decision.tool,
                payload={"confirmation_id": str(confirmation_id), "args_digest": decision.args_digest},
            )
            await self._audit.append(conn, ctx, event)
        return True

    async def _decide(
        self, ctx: TenantContext, confirmation_id: uuid.UUID, outcome: ConfirmationStatus
    ) -> ConfirmationInfo:
        if ctx.kind is not PrincipalKind.USER:
            # Not an agent, not a service account, not the platform: a person says yes or no.
            raise PermissionDenied(f"Only a human user can approve or deny a confirmation, not a {ctx.kind.value}.")
        now = self._clock()
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(self._select(ctx, confirmation_id).with_for_update())).one_or_none()
            if row is None:
                raise NotFound("No such confirmation in this tenant.")
            current = _info(row, now)
            if current.status is not ConfirmationStatus.PENDING:
                raise Conflict(f"This confirmation is {current.status.value}; it can no longer be decided.")
            tool = self._registry.get(current.tool)
            needed = tool.spec.required_role if tool is not None else Role.OWNER
            if needed not in ctx.held:
                raise RoleRequired(
                    f"Deciding on {current.tool} needs the {needed.value} role.", required=[needed.value]
                )
            row = (
                await conn.execute(
                    sa.update(_c)
                    .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == confirmation_id)
                    .values(status=outcome.value, decided_by=ctx.principal_id, decided_at=now)
                    .returning(*_c.c)
                )
            ).one()
            event = AuditEvent(
                action=f"confirmation.{outcome.value}",
                decision="allow" if outcome is ConfirmationStatus.APPROVED else "deny",
                tool=current.tool,
                payload={
                    "confirmation_id": str(confirmation_id),
                    "args_digest": current.args_digest,
                    "requested_by": str(current.requested_by),
                },
            )
            await self._audit.append(conn, ctx, event)
        for listener in self._listeners:
            await listener(ctx, confirmation_id)
        return _info(row, now)

    @staticmethod
    def _select(ctx: TenantContext, confirmation_id: uuid.UUID) -> sa.Select[Any]:
        query = sa.select(_c).where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == confirmation_id)
        if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
            # A member sees (and decides) only what they or their own agents asked for.
            query = query.where(_c.c.root_principal == ctx.root_principal)
        return query
