"""The artifact service: store tenant content by reference, read it back, mint signed URLs.

Every artifact is a row in ``tenantgate.artifacts`` (row security: only its tenant sees it)
and bytes in storage under an opaque key. Creating one checks a size cap and the tenant's
storage quota inside the same transaction that inserts the row, under a per-tenant lock,
so two uploads cannot both slip under the quota. Creation, reads, minted URLs, URL uses,
revocations and deletions are audited.

Revoking an artifact's URLs bumps its ``url_generation`` (tenantgate-signed URLs carry the
generation they were minted under) and, on a backend that presigns its own URLs (S3), moves
the object to a fresh key and deletes the old one, so old presigned URLs find nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tenantgate.artifacts._signing import ArtifactUrlInvalid, SignedUrl, UrlSigner
from tenantgate.artifacts._sniff import sniff
from tenantgate.artifacts._storage import ArtifactStorage, new_storage_key, tenant_prefix
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound, QuotaExceeded
from tenantgate.store import Database, tables

__all__ = ["RETENTION_CLASSES", "Artifact", "ArtifactLimits", "ArtifactNotFound", "ArtifactStore", "ArtifactTooLarge"]

RETENTION_CLASSES = frozenset({"short", "standard", "long"})
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_a = tables.artifacts


class ArtifactNotFound(NotFound):
    """No artifact with this id in the caller's tenant (another tenant's looks the same)."""

    code = "artifact_not_found"


class ArtifactTooLarge(InvalidInput):
    """The content is over the installation's artifact size cap; nothing was stored."""

    code = "artifact_too_large"


@dataclass(frozen=True, slots=True)
class ArtifactLimits:
    """Size cap per artifact, storage quota per tenant, and signed URL lifetimes (seconds)."""

    max_bytes: int = 25 * 1024 * 1024
    tenant_quota_bytes: int = 1024 * 1024 * 1024
    url_ttl_s: int = 300
    url_max_ttl_s: int = 3600


@dataclass(frozen=True, slots=True)
class Artifact:
    id: uuid.UUID
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    created_by: uuid.UUID
    created_by_kind: str
    run_id: uuid.UUID | None
    retention_class: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Artifact:
        return cls(id=row.id, kind=row.kind, content_type=row.content_type, size_bytes=row.size_bytes,
                   sha256=row.sha256, created_by=row.created_by, created_by_kind=row.created_by_kind,
                   run_id=row.run_id, retention_class=row.retention_class, created_at=row.created_at)  # fmt: skip


_COLUMNS = [c for c in _a.c if c.name not in ("tenant_id", "storage_key", "url_generation")]


class ArtifactStore:
    """Tenant artifacts over a database, a storage backend and a URL signer."""

    def __init__(
        self, *, db: Database, audit: AuditLog, storage: ArtifactStorage, signer: UrlSigner, limits: ArtifactLimits
    ) -> None:
        self._db, self._audit, self._storage, self._signer = db, audit, storage, signer
        self.limits = limits

    async def create(
        self,
        ctx: TenantContext,
        data: bytes,
        *,
        kind: str,
        retention_class: str = "standard",
        run_id: uuid.UUID | None = None,
        tool: str | None = None,
    ) -> Artifact:
        """Store ``data`` as a new artifact of ``ctx``'s tenant; its content type is sniffed from the bytes."""
        if not _KIND.fullmatch(kind):
            raise InvalidInput(f"An artifact kind is a lowercase word like 'web_page', not {kind!r}.")
        if retention_class not in RETENTION_CLASSES:
            raise InvalidInput(f"retention_class is one of {', '.join(sorted(RETENTION_CLASSES))}.")
        if len(data) > self.limits.max_bytes:
            raise ArtifactTooLarge(
                f"The content is {len(data)} bytes; artifacts are at most {self.limits.max_bytes} bytes.",
                limit=self.limits.max_bytes,
            )
        artifact_id, key = uuid.uuid4(), new_storage_key(ctx.tenant_id)
        content_type, sha256 = sniff(data), hashlib.sha256(data).hexdigest()
        written = False
        try:
            async with self._db.tenant(ctx) as conn:
                # One uploader at a time per tenant, so the quota check and the insert agree.
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext('tenantgate.artifacts:' || :t))"),
                    {"t": str(ctx.tenant_id)},
                )
                used = (
                    await conn.execute(
                        sa.select(sa.func.coalesce(sa.func.sum(_a.c.size_bytes), 0)).where(
                            _a.c.tenant_id == ctx.tenant_id
                        )
                    )
                ).scalar_one()
                quota = self.limits.tenant_quota_bytes
                if int(used) + len(data) > quota:
                    raise QuotaExceeded(
                        f"Storing {len(data)} bytes would pass the tenant's artifact storage quota "
                        f"({int(used)} of {quota} bytes used).",
                        limit="artifact_storage_bytes", used=int(used), quota=quota,
                    )  # fmt: skip
                await asyncio.to_thread(self._storage.put, key, data)
                written = True
                row = (
                    await conn.execute(
                        sa.insert(_a)
                        .values(
                            tenant_id=ctx.tenant_id,
                            id=artifact_id,
                            kind=kind,
                            content_type=content_type,
                            size_bytes=len(data),
                            sha256=sha256,
                            storage_key=key,
                            created_by=ctx.principal_id,
                            created_by_kind=ctx.kind.value,
                            run_id=run_id,
                            retention_class=retention_class,
                            created_at=sa.func.now(),
                        )
                        .returning(*_COLUMNS)
                    )
                ).one()
                await self._audit.append(
                    conn, ctx,
                    AuditEvent(action="artifact.created", tool=tool, payload={
                        "artifact_id": str(artifact_id), "kind": kind, "content_type": content_type,
                        "size_bytes": len(data), "sha256": sha256,
                    }),
                )  # fmt: skip
        except BaseException:
            if written:  # the row did not commit: the bytes must not outlive it
                await asyncio.to_thread(self._storage.delete, key)
            raise
        return Artifact.of(row)

    async def purge_storage(self, tenant_id: uuid.UUID) -> int:
        """Delete every stored object under the tenant's prefix (orphans without rows too); for a purge only."""
        return await asyncio.to_thread(self._storage.delete_prefix, tenant_prefix(tenant_id))

    async def stored_keys(self, tenant_id: uuid.UUID) -> list[str]:
        """Every stored object key under the tenant's prefix, as storage lists them (a purge's check)."""
        return await asyncio.to_thread(lambda: list(self._storage.list_prefix(tenant_prefix(tenant_id))))

    async def get(self, ctx: TenantContext, artifact_id: uuid.UUID) -> Artifact:
        """The artifact's metadata, or :class:`ArtifactNotFound`."""
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(sa.select(*_COLUMNS).where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == artifact_id))
            ).one_or_none()
        if row is None:
            raise ArtifactNotFound("No such artifact.")
        return Artifact.of(row)

    async def open(
        self, ctx: TenantContext, artifact_id: uuid.UUID, *, via: str = "api", url_generation: int | None = None
    ) -> tuple[Artifact, Iterator[bytes]]:
        """The artifact and its bytes (a blocking chunk iterator), the read audited.

        ``via="url"`` serves a verified signed URL minted under ``url_generation``: refused alike
        (:class:`ArtifactUrlInvalid`) if the artifact is gone or its URLs were revoked since.
        """
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.select(*_COLUMNS, _a.c.storage_key, _a.c.url_generation).where(
                        _a.c.tenant_id == ctx.tenant_id, _a.c.id == artifact_id
                    )
                )
            ).one_or_none()
            if via == "url" and (row is None or row.url_generation != url_generation):
                raise ArtifactUrlInvalid("This artifact link is not valid.")
            if row is None:
                raise ArtifactNotFound("No such artifact.")
            action = "artifact.url_used" if via == "url" else "artifact.read"
            await self._audit.append(conn, ctx, AuditEvent(action=action, payload={"artifact_id": str(artifact_id)}))
        try:
            chunks = await asyncio.to_thread(self._storage.chunks, row.storage_key)
        except FileNotFoundError:
            raise ArtifactNotFound("No such artifact.") from None
        return Artifact.of(row), chunks

    async def mint_url(self, ctx: TenantContext, artifact_id: uuid.UUID, *, ttl_s: int | None = None) -> SignedUrl:
        """A signed URL for the tenant's artifact, valid ``ttl_s`` seconds (default and maximum from the limits)."""
        ttl = self.limits.url_ttl_s if ttl_s is None else ttl_s
        if not 1 <= ttl <= self.limits.url_max_ttl_s:
            raise InvalidInput(f"A signed URL lives between 1 and {self.limits.url_max_ttl_s} seconds, not {ttl}.")
        async with self._db.tenant(ctx) as conn:
            found = (
                await conn.execute(
                    sa.select(_a.c.content_type, _a.c.storage_key, _a.c.url_generation).where(
                        _a.c.tenant_id == ctx.tenant_id, _a.c.id == artifact_id
                    )
                )
            ).one_or_none()
            if found is None:
                raise ArtifactNotFound("No such artifact.")
            if self._storage.presigns:
                expires = int(time.time()) + ttl
                presigned = await asyncio.to_thread(
                    self._storage.presign, found.storage_key, ttl_s=ttl, content_type=found.content_type,
                    filename=str(artifact_id),
                )  # fmt: skip
                url = SignedUrl(presigned, expires)
            else:
                url = self._signer.mint(ctx.tenant_id, artifact_id, ttl, generation=found.url_generation)
            await self._audit.append(
                conn, ctx,
                AuditEvent(action="artifact.url_minted", payload={
                    "artifact_id": str(artifact_id), "expires_at": url.expires_at,
                }),
            )  # fmt: skip
        return url

    def verify_url(
        self, tenant_id: uuid.UUID, artifact_id: uuid.UUID, expires: int, sig: str, *, generation: int = 0
    ) -> None:
        """Raise ``ArtifactUrlInvalid`` unless the URL was minted here for this tenant and artifact and is live.

        The generation is checked against the row when the artifact is opened (``open(via="url")``).
        """
        self._signer.verify(tenant_id, artifact_id, expires, sig, generation=generation)

    async def revoke_urls(self, ctx: TenantContext, artifact_id: uuid.UUID) -> int:
        """Make every URL minted so far for the artifact stop working; URLs minted afterwards work.

        Returns the artifact's new URL generation. On a presigning backend the object is copied to
        a new key and the old one deleted inside the transaction that switches the row: if storage
        or the commit fails, the copy is undone (the old key restored if need be) and nothing changed.
        """
        copied = old_deleted = False
        try:
            async with self._db.tenant(ctx) as conn:
                row = (
                    await conn.execute(
                        sa.select(_a.c.storage_key, _a.c.url_generation)
                        .where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == artifact_id)
                        .with_for_update()  # one revocation (and its re-key) at a time per artifact
                    )
                ).one_or_none()
                if row is None:
                    raise ArtifactNotFound("No such artifact.")
                old_key, generation = str(row.storage_key), int(row.url_generation) + 1
                key = new_storage_key(ctx.tenant_id) if self._storage.presigns else old_key
                await conn.execute(
                    sa.update(_a)
                    .where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == artifact_id)
                    .values(url_generation=generation, storage_key=key)
                )
                await self._audit.append(
                    conn, ctx,
                    AuditEvent(action="artifact.urls_revoked", payload={
                        "artifact_id": str(artifact_id), "url_generation": generation, "rekeyed": key != old_key,
                    }),
                )  # fmt: skip
                if key != old_key:
                    await asyncio.to_thread(self._storage.copy, old_key, key)
                    copied = True
                    await asyncio.to_thread(self._storage.delete, old_key)
                    old_deleted = True
        except BaseException:
            if copied:
                with contextlib.suppress(Exception):  # best effort: at worst an orphan under the tenant's prefix
                    if old_deleted:
                        await asyncio.to_thread(self._storage.copy, key, old_key)
                    await asyncio.to_thread(self._storage.delete, key)
            raise
        return generation

    async def delete(self, ctx: TenantContext, artifact_id: uuid.UUID) -> Artifact:
        """Delete the artifact: its row and its bytes in storage (URLs to it stop working), audited."""
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.delete(_a)
                    .where(_a.c.tenant_id == ctx.tenant_id, _a.c.id == artifact_id)
                    .returning(*_COLUMNS, _a.c.storage_key)
                )
            ).one_or_none()
            if row is None:
                raise ArtifactNotFound("No such artifact.")
            await self._audit.append(
                conn, ctx,
                AuditEvent(action="artifact.deleted", payload={
                    "artifact_id": str(artifact_id), "size_bytes": row.size_bytes, "sha256": row.sha256,
                }),
            )  # fmt: skip
            # Before the commit: if storage refuses, the row stays and the caller can retry.
            await asyncio.to_thread(self._storage.delete, row.storage_key)
        return Artifact.of(row)

    async def expire(self, ctx: TenantContext, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the tenant's artifacts created before ``before``: rows and objects.

        For the retention job. One transaction deletes the batch's rows (locking them), then
        their objects, then commits. A crash or failure before the commit, after objects went,
        leaves rows whose bytes are gone: reads of them answer "not found" (never stale bytes)
        and the next run deletes them, since they are still aged. Committing first could leave
        objects no row references, which nothing would ever find again.
        """
        _aware(before)
        aged = (
            sa.select(_a.c.id)
            .where(_a.c.tenant_id == ctx.tenant_id, _a.c.created_at < before)
            .order_by(_a.c.created_at)
            .limit(limit)
        )
        async with self._db.tenant(ctx) as conn:
            keys = (
                (
                    await conn.execute(
                        sa.delete(_a)
                        .where(_a.c.tenant_id == ctx.tenant_id, _a.c.id.in_(aged))
                        .returning(_a.c.storage_key)
                    )
                )
                .scalars()
                .all()
            )
            if not keys:
                return 0
            for key in keys:
                await asyncio.to_thread(self._storage.delete, key)
            payload = {"count": len(keys), "before": before.isoformat()}
            await self._audit.append(conn, ctx, AuditEvent(action="artifact.expired", payload=payload))
        return len(keys)


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise InvalidInput("The retention cutoff needs a time zone.")
