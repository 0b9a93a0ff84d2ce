"""Turn a presented credential into a :class:`TenantContext`, or refuse.

This is the only place tenant contexts are minted for requests. The tenant comes from
the verified credential, never from anything else the client sends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth._apikeys import KeyKind, PresentedKey, keys_match, parse_key
from tenantgate.auth._jwt import JwtVerifier
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import Unauthenticated
from tenantgate.logs import get_logger
from tenantgate.store import Database

__all__ = ["Authenticator", "PlatformPrincipal", "Refused", "record_refusal", "system_context"]

_log = get_logger("tenantgate.auth")
# last_used_at is advisory: write it at most this often per key, not on every request.
_LAST_USED_RESOLUTION = timedelta(seconds=60)
_GENERIC = "Invalid, expired or revoked API key."
SYSTEM_PRINCIPAL = uuid.UUID(int=0)

# The authentication hot path, as SQL: each step runs as one pipelined round trip.
_KEY_BY_PREFIX = """
    SELECT tenant_id, id, principal_id, secret_hash, roles, expires_at, revoked_at, last_used_at
      FROM tenantgate.api_keys WHERE prefix = %s
"""
_IDENTITY = """
    SELECT t.status, p.id, p.kind, p.disabled_at, m.roles
      FROM tenantgate.tenants t
      JOIN tenantgate.principals p ON p.tenant_id = t.id
      JOIN tenantgate.memberships m ON m.tenant_id = p.tenant_id AND m.principal_id = p.id
     WHERE t.id = %s AND {principal} = %s
"""
_IDENTITY_BY_ID = _IDENTITY.format(principal="p.id")
_IDENTITY_BY_EXTERNAL_ID = _IDENTITY.format(principal="p.external_id")
_TOUCH_KEY = "UPDATE tenantgate.api_keys SET last_used_at = %s WHERE tenant_id = %s AND id = %s"


@dataclass(frozen=True, slots=True)
class PlatformPrincipal:
    """A platform operator authenticated with a platform key (``tgp_...``)."""

    key_id: uuid.UUID
    name: str
    request_id: str


def system_context(tenant_id: uuid.UUID, *, mode: DeploymentMode, request_id: str) -> TenantContext:
    """The context of a platform operation inside one tenant (CLI, platform API): owner rights."""
    return TenantContext(
        tenant_id=tenant_id,
        principal_id=SYSTEM_PRINCIPAL,
        kind=PrincipalKind.SYSTEM,
        roles=frozenset({Role.OWNER}),
        mode=mode,
        request_id=request_id,
    )


class Authenticator:
    def __init__(
        self,
        *,
        db: Database,
        pepper: bytes,
        mode: DeploymentMode,
        jwt: JwtVerifier | None = None,
        audit: AuditLog | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._pepper = pepper
        self._mode = mode
        self._jwt = jwt
        # Never unaudited: without a shared log, one of its own (same chains, no shared batching).
        self._audit = audit if audit is not None else AuditLog(db=db)
        self._clock = clock

    async def authenticate(self, authorization: str | None, *, request_id: str) -> TenantContext:
        """Authenticate an ``Authorization: Bearer ...`` header value for a tenant request."""
        return await self._audited(self._authenticate(authorization, request_id=request_id), request_id)

    async def authenticate_key(self, value: str, *, request_id: str) -> TenantContext:
        """Authenticate a tenant API key (``tg_...``)."""
        return await self._audited(self._authenticate_key(value, request_id=request_id), request_id)

    async def _audited(self, attempt: Coroutine[Any, Any, TenantContext], request_id: str) -> TenantContext:
        # Every outcome is evidence: a refusal on the chain of the tenant it concerns (the
        # platform's when that is unknown), a success on the caller's tenant chain. These are
        # access events: written through group commit without the request waiting for the
        # commit (measured: waiting cost whoami a quarter of its throughput, and made a
        # refusal's time depend on which chain records it). What a request then *does* is
        # audited before it answers (gate decisions, tool outcomes, changes).
        try:
            ctx = await attempt
        except Refused as refusal:
            self._audit.later(record_refusal(self._audit, refusal, request_id))
            raise
        method = "api_key" if ctx.credential_id is not None else "jwt"
        payload = {"method": method, "key_id": str(ctx.credential_id)} if ctx.credential_id else {"method": method}
        self._audit.later(self._audit.record(ctx, AuditEvent("auth.succeeded", decision="succeeded", payload=payload)))
        return ctx

    async def _authenticate(self, authorization: str | None, *, request_id: str) -> TenantContext:
        token = bearer_token(authorization, request_id=request_id)
        if token.startswith(tuple(f"{kind.value}_" for kind in KeyKind)):
            return await self._authenticate_key(token, request_id=request_id)
        if self._jwt is None or not self._jwt.enabled or token.count(".") != 2:
            refuse(
                request_id,
                method="unknown",
                reason="unrecognised_credential",
                message="Unrecognised credential: send a tenantgate API key or a bearer JWT.",
            )
        return await self._authenticate_jwt(token, request_id=request_id)

    async def _authenticate_key(self, value: str, *, request_id: str) -> TenantContext:
        key = parse_presented(value, request_id=request_id)
        if key.kind is not KeyKind.TENANT:
            refuse(
                request_id,
                method="api_key",
                reason="platform_key",
                message="Platform keys are accepted only on /v1/platform endpoints.",
                key_prefix=key.prefix,
            )
        now = self._clock()
        async with self._db.authenticating() as tx:
            row = await tx.find_by_prefix(key.prefix, _KEY_BY_PREFIX, (key.prefix,))
            # Same work whether or not the prefix exists: hash and compare either way.
            matched = keys_match(self._pepper, key, row.secret_hash if row is not None else None)
            reason = (
                "unknown_prefix" if row is None
                else "bad_secret" if not matched
                else "revoked" if row.revoked_at is not None
                else "expired" if row.expires_at is not None and row.expires_at <= now
                else None
            )  # fmt: skip
            if reason is not None:
                # One message for every reason: the response must not tell which one it was.
                chain = row.tenant_id if row is not None else None
                refuse(request_id, method="api_key", reason=reason, chain=chain, key_prefix=key.prefix)
            # last_used_at is advisory: written at most once a minute per key, in the same round trip.
            stale = row.last_used_at is None or now - row.last_used_at > _LAST_USED_RESOLUTION
            touch = (_TOUCH_KEY, (now, row.tenant_id, row.id)) if stale else None
            identity = await tx.in_tenant(row.tenant_id, _IDENTITY_BY_ID, (row.tenant_id, row.principal_id), then=touch)
            return self._context(
                identity,
                row.tenant_id,
                request_id=request_id,
                cap=row.roles,
                credential_id=row.id,
                key_prefix=key.prefix,
            )

    async def _authenticate_jwt(self, token: str, *, request_id: str) -> TenantContext:
        assert self._jwt is not None
        try:
            verified = self._jwt.verify(token)
        except Unauthenticated as exc:
            refuse(request_id, method="jwt", reason="invalid_token", message=exc.message, cause=exc)
        async with self._db.authenticating() as tx:
            identity = await tx.in_tenant(
                verified.tenant_id, _IDENTITY_BY_EXTERNAL_ID, (verified.tenant_id, verified.subject)
            )
            return self._context(identity, verified.tenant_id, request_id=request_id)

    def _context(
        self,
        row: Any,
        tenant_id: uuid.UUID,
        *,
        request_id: str,
        cap: list[str] | None = None,
        credential_id: uuid.UUID | None = None,
        key_prefix: str | None = None,
    ) -> TenantContext:
        method = "api_key" if credential_id else "jwt"
        if row is None or row.status != "active" or row.disabled_at is not None:
            reason = "no_principal" if row is None else "tenant_suspended" if row.status != "active" else "disabled"
            message = _GENERIC if credential_id else "Unknown or disabled principal."
            # A token's tenant claim names a tenant that may not exist; a key row's tenant does.
            known = tenant_id if row is not None or credential_id is not None else None
            refuse(
                request_id,
                method=method,
                reason=reason,
                message=message,
                chain=known,
                tenant_id=str(tenant_id),
                key_prefix=key_prefix,
            )
        roles = frozenset(Role(r) for r in row.roles)
        if cap is not None:
            # A key holds its own roles only while its principal still holds them (or stronger ones).
            roles = frozenset(Role(r) for r in cap) & Role.closure(roles)
        if not roles:
            message = "This credential holds no role in its tenant any more."
            refuse(
                request_id, method=method, reason="no_roles", message=message, chain=tenant_id,
                tenant_id=str(tenant_id), key_prefix=key_prefix,
            )  # fmt: skip
        return TenantContext(
            tenant_id=tenant_id,
            principal_id=row.id,
            kind=PrincipalKind(row.kind),
            roles=roles,
            mode=self._mode,
            request_id=request_id,
            credential_id=credential_id,
        )


class Refused(Unauthenticated):
    """A refused authentication, carrying what the audit log records about it.

    The facts are attributes, not error fields: the client sees only the message.
    """

    def __init__(
        self, message: str, *, method: str, reason: str, key_prefix: str | None, tenant_id: uuid.UUID | None
    ) -> None:
        super().__init__(message)
        self.method = method
        self.reason = reason
        self.key_prefix = key_prefix
        self.tenant_id = tenant_id


def refuse(
    request_id: str,
    *,
    method: str,
    reason: str,
    message: str = _GENERIC,
    cause: BaseException | None = None,
    chain: uuid.UUID | None = None,
    key_prefix: str | None = None,
    **log_fields: str,
) -> NoReturn:
    """Log a failed authentication (never the presented secret) and refuse it.

    ``chain`` is the tenant the credential provably belongs to, whose audit chain records
    the refusal; None sends it to the platform chain.
    """
    if key_prefix is not None:
        log_fields["key_prefix"] = key_prefix
    _log.warning("auth.failed", method=method, reason=reason, request_id=request_id, **log_fields)
    raise Refused(message, method=method, reason=reason, key_prefix=key_prefix, tenant_id=chain) from cause


async def record_refusal(audit: AuditLog, refusal: Refused, request_id: str) -> None:
    """``auth.failed`` on the chain of the tenant the credential belongs to, else on the platform chain."""
    payload = {"method": refusal.method, "reason": refusal.reason}
    if refusal.key_prefix is not None:
        payload["key_prefix"] = refusal.key_prefix  # public; the secret never reaches this far
    event = AuditEvent("auth.failed", decision="failed", code=refusal.code, payload=payload)
    if refusal.tenant_id is not None:
        await audit.record_as(refusal.tenant_id, event, request_id=request_id)
    else:
        await audit.record_platform(event, request_id=request_id)


def bearer_token(authorization: str | None, *, request_id: str) -> str:
    if not authorization:
        refuse(
            request_id,
            method="none",
            reason="missing",
            message="Missing Authorization header: send `Authorization: Bearer <api key or token>`.",
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 8192:
        refuse(
            request_id,
            method="none",
            reason="malformed_header",
            message="Authorization header must be `Bearer <api key or token>`.",
        )
    return token


def parse_presented(value: str, *, request_id: str) -> PresentedKey:
    try:
        return parse_key(value)
    except Unauthenticated as exc:
        refuse(request_id, method="api_key", reason="malformed_key", message=exc.message, cause=exc)
