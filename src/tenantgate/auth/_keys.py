"""Tenant API keys: create (shown once), list, rotate with overlap, revoke at once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth._apikeys import KeyKind, generate_key, hash_key
from tenantgate.context import Role, TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound, RoleRequired
from tenantgate.logs import get_logger
from tenantgate.store import Database, tables

__all__ = ["IssuedKey", "KeyInfo", "KeyService", "require_manager"]

_k, _m = tables.api_keys, tables.memberships
_log = get_logger("tenantgate.keys")
MAX_OVERLAP = timedelta(days=30)
_LISTED = 200  # key prefixes named in one bulk revocation's audit event; the count is always exact


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Everything about a key except its secret."""

    id: uuid.UUID
    principal_id: uuid.UUID
    name: str
    prefix: str
    roles: tuple[Role, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: uuid.UUID | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key. ``key`` is the only time the secret exists outside the caller's hands."""

    info: KeyInfo
    key: str

    def __repr__(self) -> str:
        return f"IssuedKey(info={self.info!r}, key='<redacted>')"


def require_manager(ctx: TenantContext) -> None:
    if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
        raise RoleRequired("Managing keys and principals needs the owner or admin role.", required=["owner", "admin"])


def _info(row: sa.Row[tuple[object, ...]]) -> KeyInfo:
    m = row._mapping
    return KeyInfo(
        id=m["id"], principal_id=m["principal_id"], name=m["name"], prefix=m["prefix"],
        roles=tuple(Role(r) for r in m["roles"]), created_at=m["created_at"], expires_at=m["expires_at"],
        revoked_at=m["revoked_at"], last_used_at=m["last_used_at"], rotated_from=m["rotated_from"],
    )  # fmt: skip


_COLUMNS = [c for c in _k.c if c.name not in ("secret_hash", "tenant_id")]


class KeyService:
    def __init__(
        self,
        *,
        db: Database,
        pepper: bytes,
        audit: AuditLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._pepper = pepper
        self._audit = audit
        self._clock = clock

    async def create(
        self,
        ctx: TenantContext,
        *,
        principal_id: uuid.UUID,
        roles: frozenset[Role] | None = None,
        name: str = "",
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        require_manager(ctx)
        now = self._clock()
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidInput("expires_at needs a time zone.")
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("expires_at must be in the future.")
        async with self._db.tenant(ctx) as conn:
            held = await self._membership(conn, ctx, principal_id)
            wanted = held if roles is None else roles
            if not wanted or not wanted <= Role.closure(held):
                raise InvalidInput(
                    f"The key's roles must be among those the principal holds: {_names(Role.closure(held))}."
                )
            check_grant(ctx, wanted)
            issued = await self._insert(conn, ctx, principal_id, wanted, name, expires_at, rotated_from=None)
            info = issued.info
            payload = {
                "key_id": str(info.id), "key_prefix": info.prefix, "principal_id": str(principal_id),
                "roles": sorted(info.roles), "expires_at": expires_at.isoformat() if expires_at else None,
            }  # fmt: skip
            # In the key's own transaction: no key exists without its audit event, nor the reverse.
            await self._audit.append(conn, ctx, AuditEvent("key.created", payload=payload))
        _log.info("key.created", key_id=str(issued.info.id), key_prefix=issued.info.prefix, by=str(ctx.principal_id))
        return issued

    async def list(self, ctx: TenantContext, *, principal_id: uuid.UUID | None = None) -> list[KeyInfo]:
        require_manager(ctx)
        query = sa.select(*_COLUMNS).where(_k.c.tenant_id == ctx.tenant_id).order_by(_k.c.created_at, _k.c.id)
        if principal_id is not None:
            query = query.where(_k.c.principal_id == principal_id)
        async with self._db.tenant(ctx) as conn:
            return [_info(r) for r in await conn.execute(query)]

    async def rotate(self, ctx: TenantContext, key_id: uuid.UUID, *, overlap: timedelta) -> IssuedKey:
        """A new key for the same principal and roles; the old one dies after ``overlap``."""
        require_manager(ctx)
        if overlap < timedelta(0) or overlap > MAX_OVERLAP:
            raise InvalidInput(f"overlap must be between 0 and {MAX_OVERLAP.days} days.")
        now = self._clock()
        async with self._db.tenant(ctx) as conn:
            old = await self._get(conn, ctx, key_id, for_update=True)
            if not old.active(now):
                raise InvalidInput("Only an active key can be rotated; this one is revoked or expired.")
            successor = (
                await conn.execute(
                    sa.select(_k.c.id).where(_k.c.tenant_id == ctx.tenant_id, _k.c.rotated_from == key_id).limit(1)
                )
            ).scalar_one_or_none()
            if successor is not None:
                # The row lock above serialises concurrent rotations, so a key has at most one successor.
                raise Conflict(
                    f"This key was already rotated (new key {successor}); rotate that one, or revoke this one "
                    "to end its overlap now."
                )
            check_grant(ctx, frozenset(old.roles))
            old_dies = now + overlap
            if old.expires_at is None or old.expires_at > old_dies:
                await conn.execute(
                    sa.update(_k).where(_k.c.tenant_id == ctx.tenant_id, _k.c.id == key_id).values(expires_at=old_dies)
                )
            issued = await self._insert(
                conn,
                ctx,
                old.principal_id,
                frozenset(old.roles),
                old.name,
                old.expires_at,
                rotated_from=key_id,
            )
            payload = {
                "key_id": str(key_id), "key_prefix": old.prefix, "new_key_id": str(issued.info.id),
                "new_key_prefix": issued.info.prefix, "overlap_seconds": int(overlap.total_seconds()),
            }  # fmt: skip
            await self._audit.append(conn, ctx, AuditEvent("key.rotated", payload=payload))
        _log.info(
            "key.rotated",
            key_id=str(key_id),
            new_key_id=str(issued.info.id),
            overlap_s=overlap.total_seconds(),
        )
        return issued

    async def revoke(self, ctx: TenantContext, key_id: uuid.UUID) -> KeyInfo:
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            key = await self._get(conn, ctx, key_id, for_update=True)
            # Revoking is managing: an admin cannot revoke an owner's key any more than mint one.
            check_grant(ctx, frozenset(key.roles))
            row = (
                await conn.execute(
                    sa.update(_k)
                    .where(_k.c.tenant_id == ctx.tenant_id, _k.c.id == key_id)
                    .values(revoked_at=sa.func.coalesce(_k.c.revoked_at, sa.func.now()))
                    .returning(*_COLUMNS)
                )
            ).one()
            payload = {"key_id": str(key_id), "key_prefix": key.prefix, "already_revoked": key.revoked_at is not None}
            await self._audit.append(conn, ctx, AuditEvent("key.revoked", payload=payload))
        _log.info("key.revoked", key_id=str(key_id), by=str(ctx.principal_id))
        return _info(row)

    async def revoke_all(
        self, ctx: TenantContext, *, principal_id: uuid.UUID | None = None, reason: str, by: str | None = None
    ) -> tuple[KeyInfo, ...]:
        """Revoke every unrevoked key of the tenant, or of one principal, in one transaction. Audited.

        An incident action: keys are looked up in the database on every request, so the
        revocation holds in every process from the commit on. Returns the keys it revoked
        (none when all were revoked already). ``by`` names who asked (``platform:<key id>``).
        """
        require_manager(ctx)
        check_reason(reason)
        async with self._db.tenant(ctx) as conn:
            if principal_id is not None:
                await self._membership(conn, ctx, principal_id)  # an unknown principal is NotFound
            query = sa.select(*_COLUMNS).where(_k.c.tenant_id == ctx.tenant_id, _k.c.revoked_at.is_(None))
            if principal_id is not None:
                query = query.where(_k.c.principal_id == principal_id)
            keys = [_info(r) for r in await conn.execute(query.order_by(_k.c.created_at, _k.c.id).with_for_update())]
            for key in keys:  # all or nothing: an admin cannot revoke an owner's keys
                check_grant(ctx, frozenset(key.roles))
            revoked: tuple[KeyInfo, ...] = ()
            if keys:
                rows = await conn.execute(
                    sa.update(_k)
                    .where(_k.c.tenant_id == ctx.tenant_id, _k.c.id.in_([k.id for k in keys]))
                    .values(revoked_at=sa.func.now())
                    .returning(*_COLUMNS)
                )
                revoked = tuple(sorted((_info(r) for r in rows), key=lambda k: (k.created_at, k.id)))
            payload = {
                "scope": "tenant" if principal_id is None else "principal",
                "principal_id": str(principal_id) if principal_id else None, "reason": reason, "by": by,
                "count": len(revoked), "key_prefixes": [k.prefix for k in revoked[:_LISTED]],
            }  # fmt: skip
            await self._audit.append(conn, ctx, AuditEvent("key.revoked_all", decision="succeeded", payload=payload))
        _log.info("key.revoked_all", count=len(revoked), principal_id=str(principal_id), by=str(ctx.principal_id))
        return revoked

    async def _membership(self, conn: AsyncConnection, ctx: TenantContext, principal_id: uuid.UUID) -> frozenset[Role]:
        roles = (
            await conn.execute(
                sa.select(_m.c.roles).where(_m.c.tenant_id == ctx.tenant_id, _m.c.principal_id == principal_id)
            )
        ).scalar_one_or_none()
        if roles is None:
            raise NotFound("No such principal in this tenant.")
        return frozenset(Role(r) for r in roles)

    async def _get(self, conn: AsyncConnection, ctx: TenantContext, key_id: uuid.UUID, *, for_update: bool) -> KeyInfo:
        query = sa.select(*_COLUMNS).where(_k.c.tenant_id == ctx.tenant_id, _k.c.id == key_id)
        row = (await conn.execute(query.with_for_update() if for_update else query)).one_or_none()
        if row is None:
            raise NotFound("No such API key in this tenant.")
        return _info(row)

    async def _insert(
        self,
        conn: AsyncConnection,
        ctx: TenantContext,
        principal_id: uuid.UUID,
        roles: frozenset[Role],
        name: str,
        expires_at: datetime | None,
        *,
        rotated_from: uuid.UUID | None,
    ) -> IssuedKey:
        if len(name) > 200:
            raise InvalidInput("Key names are at most 200 characters.")
        key = generate_key(KeyKind.TENANT)
        row = (
            await conn.execute(
                sa.insert(_k)
                .values(
                    tenant_id=ctx.tenant_id, id=uuid.uuid4(), principal_id=principal_id, name=name,
                    prefix=key.prefix, secret_hash=hash_key(self._pepper, key), roles=sorted(roles),
                    created_at=self._clock(), expires_at=expires_at, rotated_from=rotated_from,
                )
                .returning(*_COLUMNS)
            )
        ).one()  # fmt: skip
        return IssuedKey(info=_info(row), key=key.value)


def check_grant(ctx: TenantContext, roles: frozenset[Role]) -> None:
    # Nobody hands out a role they do not hold: an admin cannot mint an owner key.
    missing = roles - ctx.held
    if missing:
        raise RoleRequired(f"You cannot grant roles you do not hold: {_names(missing)}.", required=sorted(missing))


def check_reason(reason: str) -> None:
    """An incident action says why (1 to 500 characters): the audit trail keeps it."""
    if not 1 <= len(reason.strip()) <= 500 or len(reason) > 500:
        raise InvalidInput("Say why (1 to 500 characters): the audit trail keeps the reason.")


def _names(roles: frozenset[Role]) -> str:
    return ", ".join(sorted(r.value for r in roles))
