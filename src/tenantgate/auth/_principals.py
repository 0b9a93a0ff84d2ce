"""Principals and their memberships inside one tenant.

A principal belongs to exactly one tenant (its primary key includes ``tenant_id``); a
person in two organisations is two principals, linked at most by an ``external_id``
such as a JWT subject. That keeps every identity row under the tenant's RLS policy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth._keys import check_grant, require_manager
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import Conflict, InvalidInput
from tenantgate.store import Database, tables

__all__ = ["Principal", "PrincipalService"]

_p, _m = tables.principals, tables.memberships
# Only these kinds are stored; AI execution and system contexts are derived, never rows.
CREATABLE_KINDS = frozenset({PrincipalKind.USER, PrincipalKind.SERVICE_ACCOUNT})


@dataclass(frozen=True, slots=True)
class Principal:
    id: uuid.UUID
    kind: PrincipalKind
    name: str
    external_id: str | None
    roles: tuple[Role, ...]
    created_at: datetime
    disabled_at: datetime | None


class PrincipalService:
    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def create(
        self,
        ctx: TenantContext,
        *,
        name: str,
        kind: PrincipalKind,
        roles: frozenset[Role],
        external_id: str | None = None,
    ) -> Principal:
        require_manager(ctx)
        if kind not in CREATABLE_KINDS:
            raise InvalidInput(f"Principals are users or service accounts, not {kind.value}.")
        if not roles:
            raise InvalidInput("A principal needs at least one role.")
        if not 1 <= len(name) <= 200:
            raise InvalidInput("A principal's name is 1 to 200 characters.")
        check_grant(ctx, roles)
        principal_id = uuid.uuid4()
        try:
            async with self._db.tenant(ctx) as conn:
                row = (
                    await conn.execute(
                        sa.insert(_p)
                        .values(tenant_id=ctx.tenant_id, id=principal_id, kind=kind.value, name=name,
                                external_id=external_id)
                        .returning(_p.c.created_at)
                    )
                ).one()  # fmt: skip
                await conn.execute(
                    sa.insert(_m).values(tenant_id=ctx.tenant_id, principal_id=principal_id, roles=sorted(roles))
                )
                # Ids and roles only: names and external ids are personal data, and the chain is forever.
                payload = {"principal_id": str(principal_id), "kind": kind.value, "roles": sorted(roles)}
                await self._audit.append(conn, ctx, AuditEvent("principal.created", payload=payload))
        except IntegrityError as exc:
            raise Conflict("A principal with this external_id already exists in this tenant.") from exc
        return Principal(principal_id, kind, name, external_id, tuple(sorted(roles)), row.created_at, None)

    async def list(self, ctx: TenantContext) -> list[Principal]:
        require_manager(ctx)
        query = (
            sa.select(_p, _m.c.roles)
            .select_from(_p.join(_m, sa.and_(_m.c.tenant_id == _p.c.tenant_id, _m.c.principal_id == _p.c.id)))
            .where(_p.c.tenant_id == ctx.tenant_id)
            .order_by(_p.c.created_at, _p.c.id)
        )
        async with self._db.tenant(ctx) as conn:
            rows = (await conn.execute(query)).all()
        return [
            Principal(r.id, PrincipalKind(r.kind), r.name, r.external_id, tuple(Role(x) for x in r.roles),
                      r.created_at, r.disabled_at)
            for r in rows
        ]  # fmt: skip
