"""Console passwords for user principals: scrypt with a per-user salt, compared in constant time.

A password lets a *user* sign in to the admin console (``tenantgate.api.console``); service
accounts keep API keys. A user sets their own; an owner or admin sets another user's only if
they could grant every role that user holds (an admin cannot take over an owner this way).
Setting a password ends the user's open console sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth._keys import check_grant, require_manager
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound
from tenantgate.store import Database, tables

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "PasswordHash", "PasswordService", "hash_password", "password_matches"]

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_SALT_BYTES = 16
_p, _m, _pw, _s = tables.principals, tables.memberships, tables.console_passwords, tables.console_sessions


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """An scrypt hash with its salt and parameters (stored together, so parameters can be raised later)."""

    salt: bytes
    hash: bytes
    n: int = 2**14
    r: int = 8
    p: int = 1


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def hash_password(password: str) -> PasswordHash:
    """A fresh salt and the scrypt hash of ``password`` (CPU-bound: run it off the event loop)."""
    salt = os.urandom(_SALT_BYTES)
    defaults = PasswordHash(b"", b"")
    return PasswordHash(salt, _scrypt(password, salt, defaults.n, defaults.r, defaults.p))


# Compared against when a login names no stored password: the same work either way.
_DUMMY = PasswordHash(b"\x00" * _SALT_BYTES, b"\x00" * 32)


def password_matches(password: str, stored: PasswordHash | None) -> bool:
    """Whether ``password`` matches ``stored``; with None, the same work and False."""
    target = stored if stored is not None else _DUMMY
    computed = _scrypt(password, target.salt, target.n, target.r, target.p)
    return hmac.compare_digest(computed, target.hash) and stored is not None


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"A console password is {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    if password.strip() != password or not password.isprintable():
        raise InvalidInput("A console password has no leading or trailing spaces and no control characters.")


class PasswordService:
    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def set(self, ctx: TenantContext, principal_id: uuid.UUID, password: str) -> None:
        """Set (or replace) a user's console password; audited as ``principal.password_set``."""
        check_password_rules(password)
        own = principal_id == ctx.principal_id and ctx.kind is PrincipalKind.USER
        if not own:
            require_manager(ctx)
        hashed = await asyncio.to_thread(hash_password, password)
        async with self._db.tenant(ctx) as conn:
            target = (
                await conn.execute(
                    sa.select(_p.c.kind, _p.c.name, _m.c.roles)
                    .select_from(_p.join(_m, sa.and_(_m.c.tenant_id == _p.c.tenant_id, _m.c.principal_id == _p.c.id)))
                    .where(_p.c.tenant_id == ctx.tenant_id, _p.c.id == principal_id)
                )
            ).one_or_none()
            if target is None:
                raise NotFound("No such principal in this tenant.")
            if target.kind != PrincipalKind.USER.value:
                raise InvalidInput("Only users sign in to the console; service accounts use API keys.")
            if not own:
                check_grant(ctx, frozenset(Role(r) for r in target.roles))
            # Login is by tenant and user name: two users of one name cannot both hold a password.
            namesake = await conn.execute(
                sa.select(_pw.c.principal_id)
                .select_from(_pw.join(_p, sa.and_(_p.c.tenant_id == _pw.c.tenant_id, _p.c.id == _pw.c.principal_id)))
                .where(_pw.c.tenant_id == ctx.tenant_id, _p.c.name == target.name, _pw.c.principal_id != principal_id)
            )
            if namesake.first() is not None:
                raise Conflict("Another user of this name already has a console password; rename one of them.")
            values = {
                "salt": hashed.salt, "hash": hashed.hash, "scrypt_n": hashed.n, "scrypt_r": hashed.r,
                "scrypt_p": hashed.p, "set_at": sa.func.now(), "set_by": ctx.principal_id,
            }  # fmt: skip
            await conn.execute(
                insert(_pw)
                .values(tenant_id=ctx.tenant_id, principal_id=principal_id, **values)
                .on_conflict_do_update(index_elements=[_pw.c.tenant_id, _pw.c.principal_id], set_=values)
            )
            ended = await conn.execute(
                sa.update(_s)
                .where(_s.c.tenant_id == ctx.tenant_id, _s.c.principal_id == principal_id, _s.c.revoked_at.is_(None))
                .values(revoked_at=sa.func.now())
            )
            payload = {"principal_id": str(principal_id), "sessions_ended": ended.rowcount}
            await self._audit.append(conn, ctx, AuditEvent("principal.password_set", payload=payload))
