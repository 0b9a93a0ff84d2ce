"""The vault's safe surface: ``seal``, ``open`` and ``rotate`` credential fields under per-tenant data keys.

Envelope encryption: each tenant has one active data key (AES-256), stored only wrapped by
a key-encryption key of the :class:`KeyProvider`. Fields are sealed with
:mod:`tenantgate.vault._aead`, bound to tenant, credential and field. Unwrapped data keys
are kept in a small per-process cache, but every ``open`` reads the key's row first, so a
destroyed key (crypto-shredding) stops opening at once in every process.

Rotation is online: rotating the KEK re-wraps each data key row (old KEKs stay with the
provider); rotating a tenant's data key retires the old one, which still opens what it
sealed until everything has been re-sealed under the new one, and is then destroyed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.store import Database, tables
from tenantgate.vault._aead import associated_data, generate_data_key, key_id_of, open_field, seal_field
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable
from tenantgate.vault._provider import KeyProvider, TenantKeyShredding

__all__ = ["KekRotation", "Sealed", "ShreddedKeys", "Vault"]

_k = tables.tenant_data_keys
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Sealed:
    """Sealed fields (field name -> base64 token) and the data key that sealed them."""

    data_key_id: uuid.UUID
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class KekRotation:
    """What ``rotate-kek`` did: the KEK now current and how many data keys it re-wrapped, in how many tenants."""

    kek_id: str
    tenants: int
    data_keys: int


@dataclass(frozen=True, slots=True)
class ShreddedKeys:
    """What :meth:`Vault.shred_tenant` destroyed: data key rows, and the provider's per-tenant KEK material."""

    data_keys: int
    tenant_kek: bool


class _KeyCache:
    """Unwrapped data keys by (tenant, key id): bounded LRU with a time to live, per process."""

    def __init__(self, *, size: int, ttl_s: float) -> None:
        self._size, self._ttl = size, ttl_s
        self._entries: OrderedDict[tuple[uuid.UUID, uuid.UUID], tuple[float, AESGCM]] = OrderedDict()

    def get(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> AESGCM | None:
        entry = self._entries.get((tenant_id, key_id))
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[(tenant_id, key_id)]
            return None
        self._entries.move_to_end((tenant_id, key_id))
        return entry[1]

    def put(self, tenant_id: uuid.UUID, key_id: uuid.UUID, key: AESGCM) -> None:
        self._entries[(tenant_id, key_id)] = (time.monotonic() + self._ttl, key)
        self._entries.move_to_end((tenant_id, key_id))
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def evict(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
        self._entries.pop((tenant_id, key_id), None)

    def evict_tenant(self, tenant_id: uuid.UUID) -> None:
        for entry in [k for k in self._entries if k[0] == tenant_id]:
            del self._entries[entry]


def _context(tenant_id: uuid.UUID, key_id: uuid.UUID) -> dict[str, str]:
    # What a wrapped data key is bound to (KMS EncryptionContext, the local provider's AD).
    return {"tenant_id": str(tenant_id), "data_key_id": str(key_id)}


class Vault:
    """Seal and open credential fields for a tenant; rotate keys; destroy a tenant's keys."""

    def __init__(
        self,
        *,
        db: Database,
        provider: KeyProvider,
        audit: AuditLog,
        cache_size: int = 1024,
        cache_ttl_s: float = 300.0,
    ) -> None:
        self._db = db
        self.provider = provider
        self._audit = audit
        self._cache = _KeyCache(size=cache_size, ttl_s=cache_ttl_s)

    # --- the safe surface -----------------------------------------------------------------

    async def seal(
        self, conn: AsyncConnection, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str]
    ) -> Sealed:
        """Seal each field of ``secret`` under the tenant's active data key (created on first use)."""
        key_id, key = await self._active(conn, ctx)
        fields = {
            name: base64.b64encode(
                seal_field(key, key_id, value.encode("utf-8"), associated_data(ctx.tenant_id, credential_id, name))
            ).decode("ascii")
            for name, value in secret.items()
        }
        return Sealed(data_key_id=key_id, fields=fields)

    async def open(
        self, conn: AsyncConnection, ctx: TenantContext, credential_id: uuid.UUID, sealed: Mapping[str, str]
    ) -> dict[str, str]:
        """Open every field; any failure at all is the one :class:`CredentialUnreadable`."""
        tokens: dict[str, bytes] = {}
        try:
            for name, text in sealed.items():
                tokens[name] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise CredentialUnreadable from None
        if not tokens:
            raise CredentialUnreadable
        key_ids = {key_id_of(token) for token in tokens.values()}
        if len(key_ids) != 1:
            raise CredentialUnreadable
        (key_id,) = key_ids
        key = await self._key(conn, ctx, key_id)
        opened: dict[str, str] = {}
        for name, token in tokens.items():
            plain = open_field(key, key_id, token, associated_data(ctx.tenant_id, credential_id, name))
            try:
                opened[name] = plain.decode("utf-8")
            except UnicodeDecodeError:
                raise CredentialUnreadable from None
        return opened

    async def rotate(
        self, conn: AsyncConnection, ctx: TenantContext, credential_id: uuid.UUID, sealed: Mapping[str, str]
    ) -> Sealed:
        """Re-seal under the tenant's active data key (as ``MultiFernet.rotate``): open, then seal again."""
        return await self.seal(conn, ctx, credential_id, await self.open(conn, ctx, credential_id, sealed))

    # --- data keys ------------------------------------------------------------------------

    async def new_data_key(self, conn: AsyncConnection, ctx: TenantContext) -> tuple[uuid.UUID | None, uuid.UUID]:
        """Retire the active data key and make a fresh one active; returns (old id, new id). Audited.

        Waits for transactions that are sealing under the old key (they hold it ``FOR SHARE``),
        so nothing is sealed under a retired key after this commits.
        """
        old = (
            await conn.execute(
                sa.select(_k.c.id).where(_k.c.tenant_id == ctx.tenant_id, _k.c.state == "active").with_for_update()
            )
        ).scalar_one_or_none()
        if old is not None:
            await conn.execute(
                sa.update(_k)
                .where(_k.c.tenant_id == ctx.tenant_id, _k.c.id == old)
                .values(state="retired", retired_at=sa.func.now())
            )
        new_id, _ = await self._create(conn, ctx)
        assert new_id is not None  # no active key exists in this transaction any more
        payload = {"data_key_id": str(new_id), "retired": str(old) if old else None}
        await self._audit.append(
            conn, ctx, AuditEvent(action="vault.dek_rotated", decision="succeeded", payload=payload)
        )
        return old, new_id

    async def destroy_retired(self, conn: AsyncConnection, ctx: TenantContext) -> int:
        """Destroy retired data keys that no credential is sealed under any more."""
        c = tables.credentials
        unused = ~sa.exists().where(c.c.tenant_id == ctx.tenant_id, c.c.data_key_id == _k.c.id)
        destroyed = (
            (
                await conn.execute(
                    sa.update(_k)
                    .where(_k.c.tenant_id == ctx.tenant_id, _k.c.state == "retired", unused)
                    .values(state="destroyed", wrapped_key=None, destroyed_at=sa.func.now())
                    .returning(_k.c.id)
                )
            )
            .scalars()
            .all()
        )
        for key_id in destroyed:  # other processes drop their copy when they next see the row
            self._cache.evict(ctx.tenant_id, key_id)
        return len(destroyed)

    async def shred(self, conn: AsyncConnection, ctx: TenantContext) -> int:
        """Crypto-shredding: destroy every data key of the tenant; nothing sealed under them opens again. Audited."""
        result = await conn.execute(
            sa.update(_k)
            .where(_k.c.tenant_id == ctx.tenant_id, _k.c.state != "destroyed")
            .values(state="destroyed", wrapped_key=None, destroyed_at=sa.func.now())
        )
        self._cache.evict_tenant(ctx.tenant_id)
        count = int(result.rowcount)
        await self._audit.append(
            conn, ctx, AuditEvent(action="vault.data_keys_destroyed", decision="succeeded", payload={"count": count})
        )
        return count

    async def shred_tenant(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> ShreddedKeys:
        """Crypto-shredding for a purge, inside the caller's admin transaction; the caller audits it.

        Destroys every data key row of the tenant and, when the provider keeps per-tenant key
        material outside the database (the local provider's tenant secret), destroys that too,
        so the wrapped keys in an older database backup no longer unwrap either. Idempotent.
        """
        result = await conn.execute(
            sa.update(_k)
            .where(_k.c.tenant_id == tenant_id, _k.c.state != "destroyed")
            .values(state="destroyed", wrapped_key=None, destroyed_at=sa.func.now())
        )
        self._cache.evict_tenant(tenant_id)
        provider = self.provider
        destroyed = False
        if isinstance(provider, TenantKeyShredding):
            destroyed = await self._provider_call(provider.destroy_tenant, str(tenant_id))
        return ShreddedKeys(data_keys=int(result.rowcount), tenant_kek=destroyed)

    async def rotate_kek(
        self, context_for: Callable[[uuid.UUID], TenantContext], *, tenants: Sequence[uuid.UUID] | None = None
    ) -> KekRotation:
        """Make a new KEK current and re-wrap every tenant's data keys (or those of ``tenants``) under it. Audited.

        Online: each tenant's keys are re-wrapped in one short transaction; readers see the old
        wrapping or the new one, and both unwrap, because the provider keeps old KEKs. Keys
        wrapped by another kind of provider are left alone (moving between providers is not
        a rotation).
        """
        kek_id = await self._provider_call(self.provider.rotate)
        mine = sa.and_(_k.c.state != "destroyed", _k.c.provider == self.provider.name)
        if tenants is None:
            async with self._db.admin() as conn:
                tenants = (await conn.execute(sa.select(_k.c.tenant_id).where(mine).distinct())).scalars().all()
        total = 0
        for tenant_id in tenants:
            ctx = context_for(tenant_id)
            async with self._db.tenant(ctx) as conn:
                rows = (
                    await conn.execute(
                        sa.select(_k.c.id, _k.c.kek_id, _k.c.wrapped_key)
                        .where(_k.c.tenant_id == tenant_id, mine)
                        .with_for_update()
                    )
                ).all()
                for row in rows:
                    context = _context(tenant_id, row.id)
                    dek = await self._provider_call(self.provider.unwrap, row.kek_id, bytes(row.wrapped_key), context)
                    new_kek, wrapped = await self._provider_call(self.provider.wrap, dek, context)
                    await conn.execute(
                        sa.update(_k)
                        .where(_k.c.tenant_id == tenant_id, _k.c.id == row.id)
                        .values(kek_id=new_kek, wrapped_key=wrapped, rewrapped_at=sa.func.now())
                    )
                payload = {"kek_id": kek_id, "data_keys": len(rows), "provider": self.provider.name}
                await self._audit.append(
                    conn, ctx, AuditEvent(action="vault.kek_rotated", decision="succeeded", payload=payload)
                )
            total += len(rows)
        await self._audit.record_platform(
            AuditEvent(
                action="vault.kek_rotated",
                decision="succeeded",
                payload={"kek_id": kek_id, "tenants": len(tenants), "data_keys": total},
            )
        )
        return KekRotation(kek_id=kek_id, tenants=len(tenants), data_keys=total)

    # --- internals ------------------------------------------------------------------------

    async def _active(self, conn: AsyncConnection, ctx: TenantContext) -> tuple[uuid.UUID, AESGCM]:
        """The tenant's active data key, created on first use, held ``FOR SHARE`` until the caller commits."""
        for _ in range(3):
            row = (
                await conn.execute(
                    sa.select(_k.c.id, _k.c.kek_id, _k.c.wrapped_key)
                    .where(_k.c.tenant_id == ctx.tenant_id, _k.c.state == "active")
                    .with_for_update(read=True)
                )
            ).one_or_none()
            if row is not None:
                return row.id, await self._unwrap(ctx.tenant_id, row.id, row.kek_id, bytes(row.wrapped_key))
            key_id, key = await self._create(conn, ctx)
            if key_id is not None and key is not None:
                return key_id, key
        raise KeyProviderUnavailable("No active data key could be created for this tenant; retry.")

    async def _create(self, conn: AsyncConnection, ctx: TenantContext) -> tuple[uuid.UUID | None, AESGCM | None]:
        key_id = uuid.uuid4()
        dek = generate_data_key()
        kek_id, wrapped = await self._provider_call(self.provider.wrap, dek, _context(ctx.tenant_id, key_id))
        inserted = (
            await conn.execute(
                insert(_k)
                .values(
                    tenant_id=ctx.tenant_id,
                    id=key_id,
                    state="active",
                    provider=self.provider.name,
                    kek_id=kek_id,
                    wrapped_key=wrapped,
                )
                .on_conflict_do_nothing(index_elements=["tenant_id"], index_where=sa.text("state = 'active'"))
                .returning(_k.c.id)
            )
        ).scalar_one_or_none()
        if inserted is None:  # another transaction created it first: use theirs
            return None, None
        key = AESGCM(dek)
        self._cache.put(ctx.tenant_id, key_id, key)
        return key_id, key

    async def _key(self, conn: AsyncConnection, ctx: TenantContext, key_id: uuid.UUID) -> AESGCM:
        # The row is read on every open, cache or not: a destroyed key must stop opening everywhere.
        row = (
            await conn.execute(
                sa.select(_k.c.state, _k.c.kek_id, _k.c.wrapped_key).where(
                    _k.c.tenant_id == ctx.tenant_id, _k.c.id == key_id
                )
            )
        ).one_or_none()
        if row is None or row.state == "destroyed" or row.wrapped_key is None:
            self._cache.evict(ctx.tenant_id, key_id)  # no unwrapped copy of a destroyed key stays behind
            raise CredentialUnreadable
        return await self._unwrap(ctx.tenant_id, key_id, row.kek_id, bytes(row.wrapped_key))

    async def _unwrap(self, tenant_id: uuid.UUID, key_id: uuid.UUID, kek_id: str, wrapped: bytes) -> AESGCM:
        cached = self._cache.get(tenant_id, key_id)
        if cached is not None:
            return cached
        dek = await self._provider_call(self.provider.unwrap, kek_id, wrapped, _context(tenant_id, key_id))
        if len(dek) != 32:
            raise CredentialUnreadable
        key = AESGCM(dek)
        self._cache.put(tenant_id, key_id, key)
        return key

    async def _provider_call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a (blocking) provider call off the loop; anything unexpected from it fails closed."""
        try:
            return await asyncio.to_thread(fn, *args)
        except (CredentialUnreadable, KeyProviderUnavailable):
            raise
        except Exception as exc:  # a provider fault of any kind refuses, never falls back
            raise KeyProviderUnavailable(
                f"The {self.provider.name} key provider failed ({type(exc).__name__}); the request was refused."
            ) from exc
