"""Tenant memory as rows: create-or-update by key, ranked full-text search, every version kept.

Search runs in PostgreSQL: a generated ``tsvector`` column (title and key weigh more than
content) with a GIN index, queried with ``websearch_to_tsquery`` so an agent can write
``"exact phrase" -excluded or other`` and get ``ts_rank_cd``-ordered hits. Each change
writes a ``memory_versions`` row and an audit event in the same transaction, so no
version is ever lost and a later soft delete can restore any of them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import require_manager
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.store import Database, restore_target, tables

__all__ = [
    "KEY_PATTERN",
    "MAX_CONTENT_CHARS",
    "MAX_KEY_CHARS",
    "MAX_RESULTS",
    "MAX_TAGS",
    "MAX_TITLE_CHARS",
    "TAG_PATTERN",
    "MemoryEntry",
    "MemoryHit",
    "MemoryStore",
    "MemoryVersion",
]

MAX_KEY_CHARS = 200
MAX_TITLE_CHARS = 200
MAX_CONTENT_CHARS = 20_000
MAX_TAGS = 20
MAX_RESULTS = 50
MAX_QUERY_CHARS = 500
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$"
TAG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_KEY = re.compile(KEY_PATTERN)
_TAG = re.compile(TAG_PATTERN)
_PREVIEW_CHARS = 300

_m, _v = tables.memory_entries, tables.memory_versions
_ENTRY_COLUMNS = (
    _m.c.id, _m.c.key, _m.c.title, _m.c.content, _m.c.tags, _m.c.version,
    _m.c.created_at, _m.c.updated_at, _m.c.deleted_at,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    """One memory entry as it is now."""

    id: uuid.UUID
    key: str
    title: str
    content: str
    tags: tuple[str, ...]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> MemoryEntry:
        return cls(row.id, row.key, row.title, row.content, tuple(row.tags), row.version,
                   row.created_at, row.updated_at, row.deleted_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """A search result: the entry's identity, a preview of its content and its rank."""

    id: uuid.UUID
    key: str
    title: str
    preview: str
    tags: tuple[str, ...]
    rank: float
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MemoryVersion:
    """One stored version of an entry; versions never change once written."""

    version: int
    key: str
    title: str
    content: str
    tags: tuple[str, ...]
    change: str
    changed_at: datetime
    changed_by: uuid.UUID


def _text(value: str, name: str, *, min_length: int, max_length: int) -> str:
    if not isinstance(value, str) or not min_length <= len(value) <= max_length:
        raise InvalidInput(f"The memory {name} must be {min_length} to {max_length} characters; nothing was saved.")
    if "\x00" in value:
        raise InvalidInput(f"The memory {name} contains a NUL character; nothing was saved.")
    return value


def check_key(key: str) -> str:
    _text(key, "key", min_length=1, max_length=MAX_KEY_CHARS)
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            f"Memory key {key[:50]!r}: start with a letter or digit, then letters, digits and _ . : / - only."
        )
    return key


def _tags(tags: Iterable[str]) -> list[str]:
    found = sorted(set(tags))
    if len(found) > MAX_TAGS:
        raise InvalidInput(f"At most {MAX_TAGS} tags per memory entry; nothing was saved.")
    bad = [t for t in found if not isinstance(t, str) or not _TAG.fullmatch(t)]
    if bad:
        raise InvalidInput(f"Tags are lowercase letters, digits, _ and - (up to 40 characters): {bad[:5]} are not.")
    return found


class MemoryStore:
    """A tenant's memory. Every method takes the caller's context first and sees only its tenant."""

    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def put(
        self, ctx: TenantContext, key: str, content: str, *, title: str = "", tags: Iterable[str] = ()
    ) -> tuple[MemoryEntry, str]:
        """Create the entry ``key`` or update it; return it and ``created``, ``updated`` or ``unchanged``.

        An update that changes nothing writes nothing: no version, no audit event.
        """
        check_key(key)
        _text(content, "content", min_length=1, max_length=MAX_CONTENT_CHARS)
        _text(title, "title", min_length=0, max_length=MAX_TITLE_CHARS)
        tag_list = _tags(tags)
        who = ctx.principal_id
        insert = pg_insert(_m).values(
            tenant_id=ctx.tenant_id, id=uuid.uuid4(), key=key, title=title, content=content, tags=tag_list,
            version=1, created_by=who, updated_by=who,
        )  # fmt: skip
        ex = insert.excluded
        upsert = insert.on_conflict_do_update(
            index_elements=[_m.c.tenant_id, _m.c.key],
            set_={"title": ex.title, "content": ex.content, "tags": ex.tags, "version": _m.c.version + 1,
                  "updated_at": sa.func.now(), "updated_by": who, "deleted_at": None},
            where=sa.or_(_m.c.title.is_distinct_from(ex.title), _m.c.content.is_distinct_from(ex.content),
                         _m.c.tags.is_distinct_from(ex.tags), _m.c.deleted_at.is_not(None)),
        ).returning(*_ENTRY_COLUMNS)  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(upsert)).one_or_none()
            if row is None:  # same content as stored: nothing to version
                return await self._by_key(conn, ctx, key), "unchanged"
            entry = MemoryEntry.of(row)
            change = "created" if entry.version == 1 else "updated"
            await conn.execute(
                sa.insert(_v).values(
                    tenant_id=ctx.tenant_id, entry_id=entry.id, version=entry.version, key=key, title=title,
                    content=content, tags=tag_list, change=change, changed_by=who,
                )
            )  # fmt: skip
            await self._audit.append(
                conn, ctx,
                AuditEvent(action=f"memory.{change}", payload={
                    "entry_id": str(entry.id), "key": key, "version": entry.version,
                    "content_chars": len(content), "tags": tag_list,
                }),
            )  # fmt: skip
        return entry, change

    async def get(self, ctx: TenantContext, entry_id: uuid.UUID) -> MemoryEntry:
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.select(*_ENTRY_COLUMNS).where(
                        _m.c.tenant_id == ctx.tenant_id, _m.c.id == entry_id, _m.c.deleted_at.is_(None)
                    )
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"No memory entry {entry_id} in this tenant.")
        return MemoryEntry.of(row)

    async def get_by_key(self, ctx: TenantContext, key: str) -> MemoryEntry:
        check_key(key)
        async with self._db.tenant(ctx) as conn:
            return await self._by_key(conn, ctx, key)

    async def _by_key(self, conn: AsyncConnection, ctx: TenantContext, key: str) -> MemoryEntry:
        row = (
            await conn.execute(
                sa.select(*_ENTRY_COLUMNS).where(
                    _m.c.tenant_id == ctx.tenant_id, _m.c.key == key, _m.c.deleted_at.is_(None)
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"No memory entry with key {key!r} in this tenant.")
        return MemoryEntry.of(row)

    async def search(
        self, ctx: TenantContext, query: str, *, max_results: int = 10, tags: Iterable[str] = ()
    ) -> list[MemoryHit]:
        """Ranked full-text search (web search syntax); with ``tags``, only entries carrying all of them."""
        if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS or "\x00" in query:
            raise InvalidInput(f"A memory search needs a query of 1 to {MAX_QUERY_CHARS} characters.")
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidInput(f"max_results must be between 1 and {MAX_RESULTS}.")
        tag_list = _tags(tags)
        tsquery = sa.func.websearch_to_tsquery(sa.literal_column("'english'::regconfig"), query)
        rank = sa.func.ts_rank_cd(_m.c.search, tsquery).label("rank")
        stmt = (
            sa.select(_m.c.id, _m.c.key, _m.c.title, sa.func.left(_m.c.content, _PREVIEW_CHARS).label("preview"),
                      _m.c.tags, rank, _m.c.updated_at)
            .where(_m.c.tenant_id == ctx.tenant_id, _m.c.deleted_at.is_(None), _m.c.search.op("@@")(tsquery))
            .order_by(rank.desc(), _m.c.updated_at.desc(), _m.c.id)
            .limit(max_results)
        )  # fmt: skip
        if tag_list:
            stmt = stmt.where(_m.c.tags.contains(tag_list))
        async with self._db.tenant(ctx) as conn:
            rows = (await conn.execute(stmt)).all()
        return [MemoryHit(r.id, r.key, r.title, r.preview, tuple(r.tags), float(r.rank), r.updated_at) for r in rows]

    async def recent(
        self, ctx: TenantContext, *, limit: int = 50, tags: Iterable[str] = (), include_deleted: bool = False
    ) -> list[MemoryEntry]:
        """The most recently updated entries first; deleted ones too with ``include_deleted`` (owner/admin)."""
        if not 1 <= limit <= 500:
            raise InvalidInput("limit must be between 1 and 500.")
        tag_list = _tags(tags)
        if include_deleted:
            require_manager(ctx)
        stmt = (
            sa.select(*_ENTRY_COLUMNS)
            .where(_m.c.tenant_id == ctx.tenant_id, sa.true() if include_deleted else _m.c.deleted_at.is_(None))
            .order_by(_m.c.updated_at.desc(), _m.c.id)
            .limit(limit)
        )
        if tag_list:
            stmt = stmt.where(_m.c.tags.contains(tag_list))
        async with self._db.tenant(ctx) as conn:
            return [MemoryEntry.of(r) for r in (await conn.execute(stmt)).all()]

    async def versions(self, ctx: TenantContext, entry_id: uuid.UUID) -> list[MemoryVersion]:
        """Every version of the entry, oldest first."""
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_v)
                    .where(_v.c.tenant_id == ctx.tenant_id, _v.c.entry_id == entry_id)
                    .order_by(_v.c.version)
                )
            ).all()
        if not rows:
            raise NotFound(f"No memory entry {entry_id} in this tenant.")
        return [
            MemoryVersion(r.version, r.key, r.title, r.content, tuple(r.tags), r.change, r.changed_at, r.changed_by)
            for r in rows
        ]

    async def forget(self, ctx: TenantContext, ref: uuid.UUID | str) -> MemoryEntry:
        """Delete an entry by id or key, softly: hidden from search, reads and lists, restorable with its versions."""
        match = _m.c.id == ref if isinstance(ref, uuid.UUID) else _m.c.key == check_key(ref)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.update(_m)
                    .where(_m.c.tenant_id == ctx.tenant_id, match, _m.c.deleted_at.is_(None))
                    .values(deleted_at=sa.func.now(), updated_at=sa.func.now(), updated_by=ctx.principal_id,
                            version=_m.c.version + 1)
                    .returning(*_ENTRY_COLUMNS)
                )
            ).one_or_none()  # fmt: skip
            if row is None:
                raise NotFound(f"No memory entry {str(ref)[:100]!r} in this tenant.")
            entry = MemoryEntry.of(row)
            await self._history(conn, ctx, entry, "deleted")
            await self._audit.append(
                conn, ctx,
                AuditEvent(action="memory.deleted", payload={
                    "entry_id": str(entry.id), "key": entry.key, "version": entry.version,
                }),
            )  # fmt: skip
        return entry

    async def restore(self, ctx: TenantContext, entry_id: uuid.UUID, *, version: int | None = None) -> MemoryEntry:
        """Bring back version ``version`` (default: the latest before deletion) as a new version.

        The key is the entry's identity (saving a forgotten key revives the same entry), so
        no live entry can hold it and a memory restore never conflicts.
        """
        async with self._db.tenant(ctx) as conn:
            current = (
                await conn.execute(
                    sa.select(*_ENTRY_COLUMNS)
                    .where(_m.c.tenant_id == ctx.tenant_id, _m.c.id == entry_id)
                    .with_for_update()
                )
            ).one_or_none()
            if current is None:
                raise NotFound(f"No memory entry {entry_id} in this tenant.")
            history = (
                await conn.execute(
                    sa.select(_v.c.version, _v.c.change).where(
                        _v.c.tenant_id == ctx.tenant_id, _v.c.entry_id == entry_id
                    )
                )
            ).all()
            target = restore_target([(r.version, r.change) for r in history], requested=version,
                                    deleted=current.deleted_at is not None, deletion="deleted",
                                    what=f"memory entry {entry_id}")  # fmt: skip
            source = (
                await conn.execute(
                    sa.select(_v).where(_v.c.tenant_id == ctx.tenant_id, _v.c.entry_id == entry_id,
                                        _v.c.version == target)
                )
            ).one()  # fmt: skip
            row = (
                await conn.execute(
                    sa.update(_m)
                    .where(_m.c.tenant_id == ctx.tenant_id, _m.c.id == entry_id)
                    .values(title=source.title, content=source.content, tags=list(source.tags), deleted_at=None,
                            version=_m.c.version + 1, updated_at=sa.func.now(), updated_by=ctx.principal_id)
                    .returning(*_ENTRY_COLUMNS)
                )
            ).one()  # fmt: skip
            entry = MemoryEntry.of(row)
            await self._history(conn, ctx, entry, "restored")
            await self._audit.append(
                conn, ctx,
                AuditEvent(action="memory.restored", payload={
                    "entry_id": str(entry.id), "key": entry.key, "from_version": target,
                    "to_version": entry.version, "was_deleted": current.deleted_at is not None,
                }),
            )  # fmt: skip
        return entry

    async def _history(self, conn: AsyncConnection, ctx: TenantContext, entry: MemoryEntry, change: str) -> None:
        await conn.execute(
            sa.insert(_v).values(
                tenant_id=ctx.tenant_id, entry_id=entry.id, version=entry.version, key=entry.key, title=entry.title,
                content=entry.content, tags=list(entry.tags), change=change, changed_by=ctx.principal_id,
            )
        )  # fmt: skip
