"""A tenant's credentials: sealed at rest, write-only through the API, opened by reference for tools.

``CredentialStore`` is what the API and CLI manage credentials with (create, list metadata,
replace the secret, update metadata, delete) and what the executor opens them with
(:class:`tenantgate.tools.CredentialSource`). No method that a caller outside a tool call
can reach returns a secret. Every change and every use is audited, in the same
transaction, with ids and names, never the secret.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import Role, TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound, RoleRequired
from tenantgate.store import Database, restore_target, tables
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable
from tenantgate.vault._kinds import (
    Credential,
    CredentialKind,
    check_metadata,
    check_name,
    check_provider,
    check_secret,
    secret_values,
)
from tenantgate.vault._vault import Vault

__all__ = ["CredentialInfo", "CredentialStore", "CredentialVersion", "KnownValues", "require_credential_manager"]

_c, _cv = tables.credentials, tables.credential_versions
_LIVE = _c.c.deleted_at.is_(None)


class KnownValues(Protocol):
    """A sink told every secret value the store opens (the redaction pipeline's known-value registry)."""

    def add(self, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A credential's metadata: everything but the secret (field names only)."""

    id: uuid.UUID
    name: str
    kind: CredentialKind
    provider: str | None
    fields: tuple[str, ...]
    metadata: Mapping[str, Any]
    data_key_id: uuid.UUID
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    version: int = 1
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CredentialVersion:
    """One version of a credential's metadata. Versions never hold the secret or any part of it."""

    version: int
    name: str
    kind: CredentialKind
    provider: str | None
    metadata: Mapping[str, Any]
    fields: tuple[str, ...]
    change: str
    changed_at: datetime
    changed_by: uuid.UUID


def require_credential_manager(ctx: TenantContext) -> None:
    """Creating, changing and deleting credentials needs the owner or admin role."""
    if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
        raise RoleRequired("Managing credentials needs the owner or admin role.", required=["owner", "admin"])


def _info(row: Any) -> CredentialInfo:
    m = row._mapping
    return CredentialInfo(
        id=m["id"], name=m["name"], kind=CredentialKind(m["kind"]), provider=m["provider"],
        fields=tuple(sorted(m["sealed"])), metadata=m["metadata"], data_key_id=m["data_key_id"],
        created_at=m["created_at"], created_by=m["created_by"], updated_at=m["updated_at"],
        updated_by=m["updated_by"], version=m["version"], deleted_at=m["deleted_at"],
    )  # fmt: skip


_INFO_COLUMNS = (
    _c.c.id, _c.c.name, _c.c.kind, _c.c.provider, _c.c.sealed, _c.c.metadata, _c.c.data_key_id,
    _c.c.created_at, _c.c.created_by, _c.c.updated_at, _c.c.updated_by, _c.c.version, _c.c.deleted_at,
)  # fmt: skip


class CredentialStore:
    """Credentials of each tenant, sealed by the :class:`Vault`; a :class:`tenantgate.tools.CredentialSource`."""

    def __init__(self, *, db: Database, vault: Vault, audit: AuditLog, known: KnownValues | None = None) -> None:
        self._db = db
        self.vault = vault
        self._audit = audit
        self._known = known

    # --- management (API, CLI): metadata out, secrets only in ------------------------------

    async def create(
        self,
        ctx: TenantContext,
        *,
        name: str,
        kind: CredentialKind | str,
        secret: Mapping[str, str],
        provider: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CredentialInfo:
        """Store a new credential, sealed. Owner/admin. Conflict if the name is taken."""
        require_credential_manager(ctx)
        kind = self._kind(kind)
        name, secret = check_name(name), check_secret(kind, secret)
        provider, meta = check_provider(provider), check_metadata(metadata or {})
        credential_id = uuid.uuid4()
        try:
            async with self._db.tenant(ctx) as conn:
                sealed = await self.vault.seal(conn, ctx, credential_id, secret)
                row = (
                    await conn.execute(
                        sa.insert(_c)
                        .values(
                            tenant_id=ctx.tenant_id,
                            id=credential_id,
                            name=name,
                            kind=kind.value,
                            provider=provider,
                            sealed=dict(sealed.fields),
                            data_key_id=sealed.data_key_id,
                            metadata=meta,
                            created_by=ctx.principal_id,
                            updated_by=ctx.principal_id,
                        )
                        .returning(*_INFO_COLUMNS)
                    )
                ).one()
                await self._history(conn, ctx, row, "created")
                await self._audit.append(conn, ctx, self._event("credential.created", row))
        except IntegrityError as exc:
            raise Conflict(f"A credential named {name!r} exists already; replace its secret instead.") from exc
        return _info(row)

    async def list(self, ctx: TenantContext, *, include_deleted: bool = False) -> list[CredentialInfo]:
        """Every credential of the tenant, metadata only; deleted ones too with ``include_deleted`` (owner/admin)."""
        if include_deleted:
            require_credential_manager(ctx)
        live = sa.true() if include_deleted else _LIVE
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(*_INFO_COLUMNS)
                    .where(_c.c.tenant_id == ctx.tenant_id, live)
                    .order_by(_c.c.name, _c.c.created_at)
                )
            ).all()
        return [_info(r) for r in rows]

    async def get(self, ctx: TenantContext, credential_id: uuid.UUID) -> CredentialInfo:
        """One credential's metadata."""
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.select(*_INFO_COLUMNS).where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id, _LIVE)
                )
            ).one_or_none()
        if row is None:
            raise NotFound("No such credential in this tenant.")
        return _info(row)

    async def replace_secret(
        self, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str]
    ) -> CredentialInfo:
        """Replace the whole secret (sealed under the active data key). Owner/admin."""
        require_credential_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            current = await self._locked(conn, ctx, credential_id)
            secret = check_secret(CredentialKind(current.kind), secret)
            row = await self._write_secret(conn, ctx, credential_id, secret, new_version=True)
            await self._history(conn, ctx, row, "secret_replaced")
            await self._audit.append(conn, ctx, self._event("credential.secret_replaced", row))
        return _info(row)

    async def update_metadata(
        self,
        ctx: TenantContext,
        credential_id: uuid.UUID,
        *,
        metadata: Mapping[str, Any] | None = None,
        provider: str | None = None,
    ) -> CredentialInfo:
        """Replace the metadata and/or the provider label; the secret is untouched. Owner/admin."""
        require_credential_manager(ctx)
        values: dict[str, Any] = {
            "updated_at": sa.func.now(), "updated_by": ctx.principal_id, "version": _c.c.version + 1,
        }  # fmt: skip
        if metadata is not None:
            values["metadata"] = check_metadata(metadata)
        if provider is not None:
            values["provider"] = check_provider(provider)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.update(_c)
                    .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id, _LIVE)
                    .values(**values)
                    .returning(*_INFO_COLUMNS)
                )
            ).one_or_none()
            if row is None:
                raise NotFound("No such credential in this tenant.")
            await self._history(conn, ctx, row, "updated")
            await self._audit.append(conn, ctx, self._event("credential.updated", row))
        return _info(row)

    async def delete(self, ctx: TenantContext, credential_id: uuid.UUID) -> CredentialInfo:
        """Delete a credential softly (owner/admin): no tool can use it, but it keeps its sealed secret.

        A restore brings it back usable; the retention job (or a tenant purge) destroys it for good.
        """
        require_credential_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.update(_c)
                    .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id, _LIVE)
                    .values(deleted_at=sa.func.now(), updated_at=sa.func.now(), updated_by=ctx.principal_id,
                            version=_c.c.version + 1)
                    .returning(*_INFO_COLUMNS)
                )
            ).one_or_none()  # fmt: skip
            if row is None:
                raise NotFound("No such credential in this tenant.")
            await self._history(conn, ctx, row, "deleted")
            await self._audit.append(conn, ctx, self._event("credential.deleted", row))
        return _info(row)

    async def versions(self, ctx: TenantContext, credential_id: uuid.UUID) -> builtins.list[CredentialVersion]:
        """Every version of a credential's metadata (deleted credentials included), oldest first."""
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_cv)
                    .where(_cv.c.tenant_id == ctx.tenant_id, _cv.c.credential_id == credential_id)
                    .order_by(_cv.c.version)
                )
            ).all()
        if not rows:
            raise NotFound("No such credential in this tenant.")
        return [
            CredentialVersion(r.version, r.name, CredentialKind(r.kind), r.provider, r.metadata, tuple(r.fields),
                              r.change, r.changed_at, r.changed_by)
            for r in rows
        ]  # fmt: skip

    async def restore(
        self, ctx: TenantContext, credential_id: uuid.UUID, *, version: int | None = None
    ) -> CredentialInfo:
        """Bring back a version's metadata (default: the latest before deletion) as a new version. Owner/admin.

        The secret is the one sealed now (versions never hold secrets): a deleted credential
        comes back with the secret it had, usable again. Refused while a live credential holds
        its name.
        """
        require_credential_manager(ctx)
        try:
            return await self._restore(ctx, credential_id, version)
        except IntegrityError as exc:  # a credential of that name was created concurrently
            raise Conflict("A live credential took this name meanwhile: nothing was restored.") from exc

    async def _restore(self, ctx: TenantContext, credential_id: uuid.UUID, version: int | None) -> CredentialInfo:
        async with self._db.tenant(ctx) as conn:
            current = (
                await conn.execute(
                    sa.select(_c.c.id, _c.c.name, _c.c.deleted_at)
                    .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id)
                    .with_for_update()
                )
            ).one_or_none()
            if current is None:
                raise NotFound("No such credential in this tenant.")
            history = (
                await conn.execute(
                    sa.select(_cv).where(_cv.c.tenant_id == ctx.tenant_id, _cv.c.credential_id == credential_id)
                )
            ).all()
            was_deleted = current.deleted_at is not None
            target = restore_target([(r.version, r.change) for r in history], requested=version,
                                    deleted=was_deleted, deletion="deleted", what="credential")  # fmt: skip
            source = next(r for r in history if r.version == target)
            taken = (
                await conn.execute(
                    sa.select(_c.c.id).where(_c.c.tenant_id == ctx.tenant_id, _c.c.name == source.name, _LIVE,
                                             _c.c.id != credential_id)
                )
            ).first()  # fmt: skip
            if taken is not None:
                raise Conflict(
                    f"A live credential is named {source.name!r} now: delete it first (or keep it and leave this one "
                    "deleted). Nothing was restored."
                )
            row = (
                await conn.execute(
                    sa.update(_c)
                    .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id)
                    .values(name=source.name, provider=source.provider, metadata=dict(source.metadata),
                            deleted_at=None, updated_at=sa.func.now(), updated_by=ctx.principal_id,
                            version=_c.c.version + 1)
                    .returning(*_INFO_COLUMNS)
                )
            ).one()  # fmt: skip
            await self._history(conn, ctx, row, "restored")
            extra = {"from_version": target, "to_version": row.version, "was_deleted": was_deleted}
            await self._audit.append(conn, ctx, self._event("credential.restored", row, **extra))
        return _info(row)

    # --- the executor's side: CredentialSource ---------------------------------------------

    async def use(
        self, ctx: TenantContext, name: str, *, tool: str, call_id: uuid.UUID, run_id: uuid.UUID | None
    ) -> Credential:
        """Open credential ``name`` for one tool call; the use is audited in the same transaction.

        A use that fails (no such credential, unreadable, key provider down) is audited too,
        as ``credential.used`` with decision ``failed`` and the error's code.
        """
        check_name(name)
        payload = {"name": name, "call_id": str(call_id), "run_id": str(run_id) if run_id else None}
        try:
            async with self._db.tenant(ctx) as conn:
                row = await self._by_name(conn, ctx, name)
                try:
                    secret = await self.vault.open(conn, ctx, row.id, row.sealed)
                except CredentialUnreadable:
                    # A data key rotation may have re-sealed the row and destroyed the retired key
                    # between our two reads: read it again once.
                    again = await self._by_name(conn, ctx, name)
                    if again.data_key_id == row.data_key_id:
                        raise
                    row = again
                    secret = await self.vault.open(conn, ctx, row.id, row.sealed)
                used = AuditEvent(action="credential.used", decision="succeeded", tool=tool,
                                  payload={"credential_id": str(row.id), **payload})  # fmt: skip
                await self._audit.append(conn, ctx, used)
        except (NotFound, CredentialUnreadable, KeyProviderUnavailable) as exc:
            failed = AuditEvent(action="credential.used", decision="failed", code=exc.code, tool=tool, payload=payload)
            await self._audit.record(ctx, failed)
            raise
        if self._known is not None:
            for value in secret_values(secret):
                self._known.add(value)
        return Credential(
            id=row.id, name=row.name, kind=row.kind, provider=row.provider, secret=secret, metadata=row.metadata
        )

    async def store_refreshed(
        self, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str], *, tool: str, call_id: uuid.UUID
    ) -> None:
        """Write back a refreshed secret (an OAuth token set), sealed. The tool may do this for its own call."""
        async with self._db.tenant(ctx) as conn:
            current = await self._locked(conn, ctx, credential_id)
            secret = check_secret(CredentialKind(current.kind), secret)
            row = await self._write_secret(conn, ctx, credential_id, secret)
            payload = {"credential_id": str(row.id), "name": row.name, "call_id": str(call_id)}
            await self._audit.append(
                conn, ctx, AuditEvent(action="credential.refreshed", decision="succeeded", tool=tool, payload=payload)
            )
        if self._known is not None:
            for value in secret_values(secret):
                self._known.add(value)

    # --- rotation ---------------------------------------------------------------------------

    async def rotate_data_key(
        self, ctx: TenantContext, *, batch: int = 100, reason: str | None = None, by: str | None = None
    ) -> tuple[uuid.UUID, int]:
        """Re-seal every credential of the tenant under a new data key; destroy the old key. Online. Audited.

        Returns (new data key id, credentials re-sealed). Each batch is its own short
        transaction; readers keep opening rows sealed under the retired key until then.
        Every process sees the result at once: each seal reads the active key's row and each
        open reads its key's row, so a destroyed key opens nothing anywhere. ``reason`` and
        ``by`` (an incident's why and who) go into the audit event when given.
        """
        async with self._db.tenant(ctx) as conn:
            _, new_key = await self.vault.new_data_key(conn, ctx)
        count = 0
        while True:
            async with self._db.tenant(ctx) as conn:
                rows = (
                    await conn.execute(
                        sa.select(_c.c.id, _c.c.sealed)
                        .where(_c.c.tenant_id == ctx.tenant_id, _c.c.data_key_id != new_key)
                        .order_by(_c.c.id)
                        .limit(batch)
                        .with_for_update()
                    )
                ).all()
                for row in rows:
                    sealed = await self.vault.rotate(conn, ctx, row.id, row.sealed)
                    await conn.execute(
                        sa.update(_c)
                        .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == row.id)
                        .values(sealed=dict(sealed.fields), data_key_id=sealed.data_key_id)
                    )
            count += len(rows)
            if len(rows) < batch:
                break
        async with self._db.tenant(ctx) as conn:
            destroyed = await self.vault.destroy_retired(conn, ctx)
            payload: dict[str, object] = {
                "data_key_id": str(new_key), "resealed": count, "retired_keys_destroyed": destroyed,
            }  # fmt: skip
            if reason is not None:
                payload |= {"reason": reason, "by": by}
            await self._audit.append(
                conn, ctx, AuditEvent(action="credential.resealed", decision="succeeded", payload=payload)
            )
        return new_key, count

    # --- internals ----------------------------------------------------------------------------

    @staticmethod
    def _kind(kind: CredentialKind | str) -> CredentialKind:
        try:
            return CredentialKind(kind)
        except ValueError:
            allowed = ", ".join(k.value for k in CredentialKind)
            raise InvalidInput(f"Unknown credential kind {kind!r}; one of: {allowed}.") from None

    async def _by_name(self, conn: AsyncConnection, ctx: TenantContext, name: str) -> Any:
        row = (
            await conn.execute(
                sa.select(
                    _c.c.id, _c.c.name, _c.c.kind, _c.c.provider, _c.c.sealed, _c.c.data_key_id, _c.c.metadata
                ).where(_c.c.tenant_id == ctx.tenant_id, _c.c.name == name, _LIVE)
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"This tenant has no credential named {name!r}.")
        return row

    async def _locked(self, conn: AsyncConnection, ctx: TenantContext, credential_id: uuid.UUID) -> Any:
        row = (
            await conn.execute(
                sa.select(_c.c.id, _c.c.kind)
                .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id, _LIVE)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise NotFound("No such credential in this tenant.")
        return row

    async def _write_secret(
        self,
        conn: AsyncConnection,
        ctx: TenantContext,
        credential_id: uuid.UUID,
        secret: Mapping[str, str],
        *,
        new_version: bool = False,
    ) -> Any:
        sealed = await self.vault.seal(conn, ctx, credential_id, secret)
        # A refresh by a tool changes the secret only; a replacement by a manager is a new version.
        bump = {"version": _c.c.version + 1} if new_version else {}
        return (
            await conn.execute(
                sa.update(_c)
                .where(_c.c.tenant_id == ctx.tenant_id, _c.c.id == credential_id)
                .values(
                    sealed=dict(sealed.fields),
                    data_key_id=sealed.data_key_id,
                    updated_at=sa.func.now(),
                    updated_by=ctx.principal_id,
                    **bump,
                )
                .returning(*_INFO_COLUMNS)
            )
        ).one()

    @staticmethod
    async def _history(conn: AsyncConnection, ctx: TenantContext, row: Any, change: str) -> None:
        """Write the version row of ``row``'s metadata: never the sealed secret, only its field names."""
        m = row._mapping
        await conn.execute(
            sa.insert(_cv).values(
                tenant_id=ctx.tenant_id, credential_id=m["id"], version=m["version"], name=m["name"], kind=m["kind"],
                provider=m["provider"], metadata=dict(m["metadata"]), fields=sorted(m["sealed"]), change=change,
                changed_by=ctx.principal_id,
            )
        )  # fmt: skip

    @staticmethod
    def _event(action: str, row: Any, **extra: Any) -> AuditEvent:
        m = row._mapping
        payload = {"credential_id": str(m["id"]), "name": m["name"], "kind": m["kind"], "provider": m["provider"],
                   "fields": sorted(m["sealed"]), **extra}  # fmt: skip
        return AuditEvent(action=action, decision="succeeded", payload=payload)
