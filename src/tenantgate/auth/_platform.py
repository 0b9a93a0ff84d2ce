"""Platform keys (``tgp_...``): the credential for /v1/platform endpoints. Admin role only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth._apikeys import KeyKind, generate_key, hash_key, keys_match
from tenantgate.auth._authenticator import (
    PlatformPrincipal,
    Refused,
    bearer_token,
    parse_presented,
    record_refusal,
    refuse,
)
from tenantgate.errors import NotFound
from tenantgate.logs import get_logger
from tenantgate.store import Database, tables

__all__ = ["PlatformKeyInfo", "PlatformKeys"]

_pk = tables.platform_keys
_log = get_logger("tenantgate.platform")


@dataclass(frozen=True, slots=True)
class PlatformKeyInfo:
    id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class PlatformKeys:
    def __init__(self, *, db: Database, pepper: bytes, audit: AuditLog) -> None:
        self._db = db
        self._pepper = pepper
        self._audit = audit

    async def create(
        self, name: str, *, actor: uuid.UUID | None = None, request_id: str | None = None
    ) -> tuple[PlatformKeyInfo, str]:
        """A new platform key (shown once), recorded on the platform chain."""
        key = generate_key(KeyKind.PLATFORM)
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.insert(_pk)
                    .values(id=uuid.uuid4(), name=name, prefix=key.prefix, secret_hash=hash_key(self._pepper, key))
                    .returning(_pk.c.id, _pk.c.name, _pk.c.prefix, _pk.c.created_at, _pk.c.revoked_at,
                               _pk.c.last_used_at)
                )
            ).one()  # fmt: skip
            event = AuditEvent("platform_key.created", payload={"key_id": str(row.id), "key_prefix": row.prefix})
            await self._audit.append_platform(conn, event, request_id=request_id, actor=actor)
        _log.info("platform_key.created", key_id=str(row.id), key_prefix=row.prefix)
        return PlatformKeyInfo(*row), key.value

    async def ensure_bootstrap_key(self) -> str | None:
        """On first start: create the first platform key and return it; later: None."""
        async with self._db.admin() as conn:
            # One bootstrap even if several processes start at once.
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7001)"))
            if (await conn.execute(sa.select(sa.func.count()).select_from(_pk))).scalar_one():
                return None
            key = generate_key(KeyKind.PLATFORM)
            key_id = uuid.uuid4()
            await conn.execute(
                sa.insert(_pk).values(
                    id=key_id,
                    name="bootstrap",
                    prefix=key.prefix,
                    secret_hash=hash_key(self._pepper, key),
                )
            )
            payload = {"key_id": str(key_id), "key_prefix": key.prefix, "bootstrap": True}
            await self._audit.append_platform(conn, AuditEvent("platform_key.created", payload=payload))
        return key.value

    async def list(self) -> list[PlatformKeyInfo]:
        async with self._db.admin() as conn:
            rows = await conn.execute(
                sa.select(_pk.c.id, _pk.c.name, _pk.c.prefix, _pk.c.created_at, _pk.c.revoked_at, _pk.c.last_used_at)
                .order_by(_pk.c.created_at)
            )  # fmt: skip
            return [PlatformKeyInfo(*r) for r in rows]

    async def revoke(self, key_id: uuid.UUID, *, actor: uuid.UUID | None = None, request_id: str | None = None) -> None:
        """Revoke a platform key at once, recorded on the platform chain."""
        async with self._db.admin() as conn:
            result = await conn.execute(
                sa.update(_pk).where(_pk.c.id == key_id, _pk.c.revoked_at.is_(None)).values(revoked_at=sa.func.now())
            )
            if result.rowcount == 0:
                raise NotFound("No such active platform key.")
            event = AuditEvent("platform_key.revoked", payload={"key_id": str(key_id)})
            await self._audit.append_platform(conn, event, request_id=request_id, actor=actor)
        _log.info("platform_key.revoked", key_id=str(key_id))

    async def authenticate(self, authorization: str | None, *, request_id: str) -> PlatformPrincipal:
        """The operator behind a platform key; every attempt is recorded on the platform chain."""
        try:
            operator = await self._authenticate(authorization, request_id=request_id)
        except Refused as refusal:
            await record_refusal(self._audit, refusal, request_id)
            raise
        event = AuditEvent("auth.succeeded", decision="succeeded", payload={"method": "platform_key"})
        await self._audit.record_platform(event, request_id=request_id, actor=operator.key_id)
        return operator

    async def _authenticate(self, authorization: str | None, *, request_id: str) -> PlatformPrincipal:
        key = parse_presented(bearer_token(authorization, request_id=request_id), request_id=request_id)
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.select(_pk.c.id, _pk.c.name, _pk.c.secret_hash, _pk.c.revoked_at).where(
                        _pk.c.prefix == key.prefix
                    )
                )
            ).one_or_none()
            ok = keys_match(self._pepper, key, row.secret_hash if row is not None else None)
            if key.kind is not KeyKind.PLATFORM or row is None or not ok or row.revoked_at is not None:
                refuse(
                    request_id,
                    method="platform_key",
                    reason="invalid",
                    message="Invalid or revoked platform key.",
                    key_prefix=key.prefix,
                )
            await conn.execute(sa.update(_pk).where(_pk.c.id == row.id).values(last_used_at=sa.func.now()))
        return PlatformPrincipal(key_id=row.id, name=row.name, request_id=request_id)
