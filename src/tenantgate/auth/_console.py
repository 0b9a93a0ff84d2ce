"""Admin-console sign-in: a user's password (or a platform key) becomes a server-side session.

The browser holds a random token in a cookie; the database holds only its keyed hash, with an
absolute expiry, an idle timeout and a revocation time. The cookie value names the tenant
(``<tenant id>.<token>``), so the session row is read inside that tenant's row security, and a
session yields the same :class:`TenantContext` as an API key of that user would: the roles of the
user's membership now, not at sign-in. Each session's CSRF token is a keyed hash of its token,
so nothing more is stored and a form from one session is useless in another.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import sqlalchemy as sa

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth._authenticator import PlatformPrincipal, Refused, record_refusal, refuse
from tenantgate.auth._passwords import MAX_PASSWORD, PasswordHash, password_matches
from tenantgate.auth._platform import PlatformKeys
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import PermissionDenied, Unauthenticated
from tenantgate.store import Database, tables

__all__ = ["ConsoleAuth", "ConsoleLogin", "ConsoleTimeouts"]

_s, _ps = tables.console_sessions, tables.console_platform_sessions
_GENERIC = "Wrong tenant, user name or password."
_EXPIRED = "Your console session has ended; sign in again."

_TENANT_BY_NAME = "SELECT id, status FROM tenantgate.tenants WHERE name = %s"
_LOGIN_IDENTITY = """
    SELECT p.id, p.disabled_at, m.roles, pw.salt, pw.hash, pw.scrypt_n, pw.scrypt_r, pw.scrypt_p
      FROM tenantgate.principals p
      JOIN tenantgate.memberships m ON m.tenant_id = p.tenant_id AND m.principal_id = p.id
      JOIN tenantgate.console_passwords pw ON pw.tenant_id = p.tenant_id AND pw.principal_id = p.id
     WHERE p.tenant_id = %s AND p.kind = 'user' AND p.name = %s
     ORDER BY pw.set_at DESC
     LIMIT 1
"""
# One statement: a session that is live, of an active tenant and an enabled user, is touched
# and returns the user's roles now; anything else returns no row.
_RESOLVE = """
    UPDATE tenantgate.console_sessions s SET last_seen_at = now()
      FROM tenantgate.tenants t, tenantgate.principals p, tenantgate.memberships m
     WHERE s.tenant_id = %s AND s.token_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now()
       AND s.last_seen_at > now() - make_interval(secs => %s)
       AND t.id = s.tenant_id AND t.status = 'active'
       AND p.tenant_id = s.tenant_id AND p.id = s.principal_id AND p.kind = 'user' AND p.disabled_at IS NULL
       AND m.tenant_id = s.tenant_id AND m.principal_id = s.principal_id
    RETURNING s.id, s.principal_id, m.roles
"""


@dataclass(frozen=True, slots=True)
class ConsoleTimeouts:
    """How long a console session lives: at most ``ttl``, and not past ``idle`` without a request."""

    ttl: timedelta = timedelta(hours=8)
    idle: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class ConsoleLogin:
    """A new session: the cookie value (shown to the browser once) and who it is."""

    cookie: str
    ctx: TenantContext


class ConsoleAuth:
    def __init__(
        self,
        *,
        db: Database,
        pepper: bytes,
        audit: AuditLog,
        platform_keys: PlatformKeys,
        mode: DeploymentMode,
        timeouts: ConsoleTimeouts | None = None,
    ) -> None:
        self._db = db
        self._pepper = pepper
        self._audit = audit
        self._platform_keys = platform_keys
        self._mode = mode
        self.timeouts = timeouts or ConsoleTimeouts()

    # --- tenant users ----------------------------------------------------------------------

    async def login(self, tenant_name: str, user_name: str, password: str, *, request_id: str) -> ConsoleLogin:
        """Check a user's password and open a session; every outcome is audited."""
        try:
            ctx = await self._verify(tenant_name, user_name, password, request_id=request_id)
        except Refused as refusal:
            await record_refusal(self._audit, refusal, request_id)
            raise
        token = secrets.token_urlsafe(32)
        async with self._db.tenant(ctx) as conn:
            session_id = uuid.uuid4()
            await conn.execute(
                sa.insert(_s).values(
                    tenant_id=ctx.tenant_id, id=session_id, token_hash=self._digest(token),
                    principal_id=ctx.principal_id, expires_at=sa.func.now() + self.timeouts.ttl,
                )
            )  # fmt: skip
            event = AuditEvent("console.login", decision="succeeded", payload={"session_id": str(session_id)})
            await self._audit.append(conn, ctx, event)
        return ConsoleLogin(cookie=f"{ctx.tenant_id}.{token}", ctx=ctx)

    async def _verify(self, tenant_name: str, user_name: str, password: str, *, request_id: str) -> TenantContext:
        def fail(reason: str, chain: uuid.UUID | None = None) -> NoReturn:
            refuse(request_id, method="console_password", reason=reason, message=_GENERIC, chain=chain)

        if not (0 < len(tenant_name) <= 63 and 0 < len(user_name) <= 200 and 0 < len(password) <= MAX_PASSWORD):
            await asyncio.to_thread(password_matches, password[:MAX_PASSWORD], None)
            fail("malformed")
        async with self._db.authenticating() as tx:
            tenant = await tx.find_tenant(tenant_name, _TENANT_BY_NAME, (tenant_name,))
            row = None if tenant is None else await tx.in_tenant(tenant.id, _LOGIN_IDENTITY, (tenant.id, user_name))
        stored = None if row is None else PasswordHash(bytes(row.salt), bytes(row.hash), row.scrypt_n, row.scrypt_r,
                                                       row.scrypt_p)  # fmt: skip
        # Same work whether or not the tenant, the user or a password exists.
        matched = await asyncio.to_thread(password_matches, password, stored)
        if tenant is None:
            fail("unknown_tenant")
        if row is None:
            fail("unknown_user", tenant.id)
        if not matched:
            fail("bad_password", tenant.id)
        if tenant.status != "active":
            fail("tenant_suspended", tenant.id)
        if row.disabled_at is not None:
            fail("disabled", tenant.id)
        roles = frozenset(Role(r) for r in row.roles)
        if not roles:
            fail("no_roles", tenant.id)
        return TenantContext(
            tenant_id=tenant.id, principal_id=row.id, kind=PrincipalKind.USER, roles=roles, mode=self._mode,
            request_id=request_id,
        )  # fmt: skip

    async def resolve(self, cookie: str | None, *, request_id: str) -> TenantContext:
        """The context of a live session cookie (touching its idle timer), or Unauthenticated."""
        tenant_id, token = _split(cookie)
        async with self._db.authenticating() as tx:
            idle = self.timeouts.idle.total_seconds()
            row = await tx.in_tenant(tenant_id, _RESOLVE, (tenant_id, self._digest(token), idle))
        if row is None or not row.roles:
            raise Unauthenticated(_EXPIRED)
        return TenantContext(
            tenant_id=tenant_id, principal_id=row.principal_id, kind=PrincipalKind.USER,
            roles=frozenset(Role(r) for r in row.roles), mode=self._mode, request_id=request_id,
        )  # fmt: skip

    async def logout(self, ctx: TenantContext, cookie: str) -> None:
        """Revoke the session at once; audited as ``console.logout``."""
        tenant_id, token = _split(cookie)
        async with self._db.tenant(ctx) as conn:
            ended = await conn.execute(
                sa.update(_s)
                .where(_s.c.tenant_id == ctx.tenant_id, _s.c.token_hash == self._digest(token),
                       _s.c.revoked_at.is_(None))
                .values(revoked_at=sa.func.now())
                .returning(_s.c.id)
            )  # fmt: skip
            row = ended.first()
            if row is not None and tenant_id == ctx.tenant_id:
                payload = {"session_id": str(row.id)}
                await self._audit.append(conn, ctx, AuditEvent("console.logout", payload=payload))

    # --- platform operators ----------------------------------------------------------------

    async def platform_login(self, key: str, *, request_id: str) -> tuple[str, PlatformPrincipal]:
        """Check a platform key (audited by the platform keys) and open a platform console session."""
        operator = await self._platform_keys.authenticate(f"Bearer {key.strip()}", request_id=request_id)
        token = secrets.token_urlsafe(32)
        session_id = uuid.uuid4()
        async with self._db.admin() as conn:
            await conn.execute(
                sa.insert(_ps).values(
                    id=session_id, token_hash=self._digest(token), key_id=operator.key_id,
                    expires_at=sa.func.now() + self.timeouts.ttl,
                )
            )  # fmt: skip
            event = AuditEvent("console.login", decision="succeeded", payload={"session_id": str(session_id)})
            await self._audit.append_platform(conn, event, request_id=request_id, actor=operator.key_id)
        return f"platform.{token}", operator

    async def platform_resolve(self, cookie: str | None, *, request_id: str) -> PlatformPrincipal:
        token = _platform_token(cookie)
        pk = tables.platform_keys
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.update(_ps)
                    .where(
                        _ps.c.token_hash == self._digest(token), _ps.c.revoked_at.is_(None),
                        _ps.c.expires_at > sa.func.now(),
                        _ps.c.last_seen_at > sa.func.now() - self.timeouts.idle,
                        pk.c.id == _ps.c.key_id, pk.c.revoked_at.is_(None),
                    )
                    .values(last_seen_at=sa.func.now())
                    .returning(_ps.c.key_id, pk.c.name)
                )
            ).first()  # fmt: skip
        if row is None:
            raise Unauthenticated(_EXPIRED)
        return PlatformPrincipal(key_id=row.key_id, name=row.name, request_id=request_id)

    async def platform_logout(self, operator: PlatformPrincipal, cookie: str) -> None:
        token = _platform_token(cookie)
        async with self._db.admin() as conn:
            ended = (
                await conn.execute(
                    sa.update(_ps)
                    .where(_ps.c.token_hash == self._digest(token), _ps.c.revoked_at.is_(None))
                    .values(revoked_at=sa.func.now())
                    .returning(_ps.c.id)
                )
            ).first()
            if ended is not None:
                event = AuditEvent("console.logout", payload={"session_id": str(ended.id)})
                await self._audit.append_platform(conn, event, request_id=operator.request_id, actor=operator.key_id)

    # --- CSRF --------------------------------------------------------------------------------

    def csrf_token(self, cookie: str) -> str:
        """The session's CSRF token: a keyed hash of its cookie, so it is per session and never stored."""
        return hmac.new(self._pepper, b"console-csrf\x00" + cookie.encode("utf-8"), hashlib.sha256).hexdigest()

    def check_csrf(self, cookie: str, presented: str | None) -> None:
        """Raise PermissionDenied unless ``presented`` is this session's CSRF token (constant time)."""
        expected = self.csrf_token(cookie).encode("ascii")
        given = (presented or "").encode("utf-8", "replace")
        if not hmac.compare_digest(expected, given):
            raise PermissionDenied("The form's CSRF token is missing or wrong; reload the page and try again.")

    def _digest(self, token: str) -> bytes:
        return hmac.new(self._pepper, b"console-session\x00" + token.encode("utf-8"), hashlib.sha256).digest()


def _split(cookie: str | None) -> tuple[uuid.UUID, str]:
    tenant, _, token = (cookie or "").partition(".")
    try:
        tenant_id = uuid.UUID(tenant)
    except ValueError:
        raise Unauthenticated(_EXPIRED) from None
    if not 20 <= len(token) <= 100:
        raise Unauthenticated(_EXPIRED)
    return tenant_id, token


def _platform_token(cookie: str | None) -> str:
    kind, _, token = (cookie or "").partition(".")
    if kind != "platform" or not 20 <= len(token) <= 100:
        raise Unauthenticated(_EXPIRED)
    return token
