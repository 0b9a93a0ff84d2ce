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
from tenantgate.auth._keys import check_grant, check_reason, require_manager
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound
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

    async def disable(
        self, ctx: TenantContext, principal_id: uuid.UUID, *, reason: str, by: str | None = None
    ) -> Principal:
        """Disable a principal: its API keys and JWTs are refused from the next request, everywhere. Audited.

        Authentication reads ``disabled_at`` on every request, so no process needs telling.
        Disabling one already disabled keeps the first time and is fine.
        """
        return await self._set_disabled(ctx, principal_id, disabled=True, reason=reason, by=by)

    async def enable(
        self, ctx: TenantContext, principal_id: uuid.UUID, *, reason: str, by: str | None = None
    ) -> Principal:
        """Let a disabled principal authenticate again (its revoked keys stay revoked). Audited."""
        return await self._set_disabled(ctx, principal_id, disabled=False, reason=reason, by=by)

    async def _set_disabled(
        self, ctx: TenantContext, principal_id: uuid.UUID, *, disabled: bool, reason: str, by: str | None
    ) -> Principal:
        require_manager(ctx)
        check_reason(reason)
        if principal_id == ctx.principal_id:
            raise InvalidInput("You cannot disable or enable yourself; ask another owner or a platform operator.")
        query = (
            sa.select(_p, _m.c.roles)
            .select_from(_p.join(_m, sa.and_(_m.c.tenant_id == _p.c.tenant_id, _m.c.principal_id == _p.c.id)))
            .where(_p.c.tenant_id == ctx.tenant_id, _p.c.id == principal_id)
            .with_for_update(of=_p)
        )
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(query)).one_or_none()
            if row is None:
                raise NotFound("No such principal in this tenant.")
            roles = frozenset(Role(r) for r in row.roles)
            check_grant(ctx, roles)  # an admin cannot switch an owner off (or on)
            was = row.disabled_at
            stamp = (
                await conn.execute(
                    sa.update(_p)
                    .where(_p.c.tenant_id == ctx.tenant_id, _p.c.id == principal_id)
                    .values(disabled_at=sa.func.coalesce(_p.c.disabled_at, sa.func.now()) if disabled else None)
                    .returning(_p.c.disabled_at)
                )
            ).scalar_one()
            changed = (was is None) == disabled
            payload = {"principal_id": str(principal_id), "reason": reason, "by": by, "changed": changed}
            action = "principal.disabled" if disabled else "principal.enabled"
            await self._audit.append(conn, ctx, AuditEvent(action, decision="succeeded", payload=payload))
        return Principal(row.id, PrincipalKind(row.kind), row.name, row.external_id, tuple(sorted(roles)),
                         row.created_at, stamp)  # fmt: skip
