"""The tenant's memory over HTTP: list, search, read an entry and its versions (any member).

Deleting (softly) and restoring an entry needs the owner or admin role; the agent forgets
with its ``memory_forget`` tool, through the gate.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._lifecycle import IncludeDeleted, RestoreIn, version_of
from tenantgate.auth import require_manager
from tenantgate.memory import MAX_RESULTS, MAX_TAGS, MemoryEntry, MemoryHit, MemoryVersion

router = APIRouter(prefix="/v1/memory", tags=["memory"], responses=ERROR_RESPONSES)

Tags = Annotated[list[str] | None, Query(max_length=MAX_TAGS, description="Only entries carrying all these tags.")]


class MemoryEntryOut(BaseModel):
    id: uuid.UUID
    key: str
    title: str
    content: str
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, e: MemoryEntry) -> MemoryEntryOut:
        return cls(id=e.id, key=e.key, title=e.title, content=e.content, tags=list(e.tags), version=e.version,
                   created_at=e.created_at, updated_at=e.updated_at, deleted_at=e.deleted_at)  # fmt: skip


class MemoryHitOut(BaseModel):
    id: uuid.UUID
    key: str
    title: str
    preview: str
    tags: list[str]
    rank: float
    updated_at: datetime

    @classmethod
    def of(cls, h: MemoryHit) -> MemoryHitOut:
        return cls(id=h.id, key=h.key, title=h.title, preview=h.preview, tags=list(h.tags), rank=h.rank,
                   updated_at=h.updated_at)  # fmt: skip


class MemoryVersionOut(BaseModel):
    version: int
    key: str
    title: str
    content: str
    tags: list[str]
    change: str
    changed_at: datetime
    changed_by: uuid.UUID

    @classmethod
    def of(cls, v: MemoryVersion) -> MemoryVersionOut:
        return cls(version=v.version, key=v.key, title=v.title, content=v.content, tags=list(v.tags),
                   change=v.change, changed_at=v.changed_at, changed_by=v.changed_by)  # fmt: skip


@router.get("", response_model=list[MemoryEntryOut])
async def list_memory(
    ctx: Caller,
    services: ServicesDep,
    tag: Tags = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    include_deleted: IncludeDeleted = False,
) -> list[MemoryEntryOut]:
    """The most recently updated entries first."""
    entries = await services.memory.recent(ctx, limit=limit, tags=tag or (), include_deleted=include_deleted)
    return [MemoryEntryOut.of(e) for e in entries]


@router.get("/search", response_model=list[MemoryHitOut])
async def search_memory(
    ctx: Caller,
    services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Web search syntax.")],
    tag: Tags = None,
    max_results: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 10,
) -> list[MemoryHitOut]:
    """Ranked full-text search over keys, titles and content."""
    hits = await services.memory.search(ctx, q, max_results=max_results, tags=tag or ())
    return [MemoryHitOut.of(h) for h in hits]


@router.get("/{entry_id}", response_model=MemoryEntryOut, responses=error_responses(404))
async def get_memory(entry_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> MemoryEntryOut:
    return MemoryEntryOut.of(await services.memory.get(ctx, entry_id))


@router.get("/{entry_id}/versions", response_model=list[MemoryVersionOut], responses=error_responses(404))
async def memory_versions(entry_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> list[MemoryVersionOut]:
    """Every version of the entry, oldest first."""
    return [MemoryVersionOut.of(v) for v in await services.memory.versions(ctx, entry_id)]


@router.delete("/{entry_id}", response_model=MemoryEntryOut, responses=error_responses(404))
async def delete_memory(entry_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> MemoryEntryOut:
    """Delete an entry softly (owner/admin): hidden everywhere, restorable with every version."""
    require_manager(ctx)
    return MemoryEntryOut.of(await services.memory.forget(ctx, entry_id))


@router.post("/{entry_id}/restore", response_model=MemoryEntryOut, responses=error_responses(404))
async def restore_memory(
    entry_id: uuid.UUID, ctx: Caller, services: ServicesDep, body: RestoreIn | None = None
) -> MemoryEntryOut:
    """Bring back a version as a new version (owner/admin); default: the latest before the deletion."""
    require_manager(ctx)
    return MemoryEntryOut.of(await services.memory.restore(ctx, entry_id, version=version_of(body)))
