"""Memory tools: search, read and write the tenant's memory (package ``memory``, both modes)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenantgate.memory import (
    KEY_PATTERN,
    MAX_CONTENT_CHARS,
    MAX_KEY_CHARS,
    MAX_RESULTS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    TAG_PATTERN,
    MemoryEntry,
    MemoryStore,
)
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool

__all__ = ["MemoryForgetArgs", "MemoryGetArgs", "MemoryPutArgs", "MemorySearchArgs", "memory_tools"]

Tag = Field(pattern=TAG_PATTERN)


class MemorySearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=500, description='Words to find; "quoted phrase", -excluded, or.')
    max_results: int = Field(5, ge=1, le=MAX_RESULTS)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS, description="Only entries with all these tags.")


class MemoryGetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID | None = Field(None, description="The entry's id (from memory_search).")
    key: str | None = Field(None, max_length=MAX_KEY_CHARS, pattern=KEY_PATTERN, description="Or the entry's key.")

    @model_validator(mode="after")
    def _one_reference(self) -> MemoryGetArgs:
        if (self.id is None) == (self.key is None):
            raise ValueError("give exactly one of id or key")
        return self


class MemoryForgetArgs(MemoryGetArgs):
    """Which entry to forget: its id or its key."""


class MemoryPutArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        min_length=1, max_length=MAX_KEY_CHARS, pattern=KEY_PATTERN,
        description="A stable name for the entry, e.g. 'customer/acme/preferences'. An existing key is updated.",
    )  # fmt: skip
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    title: str = Field("", max_length=MAX_TITLE_CHARS)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)


def entry_json(entry: MemoryEntry) -> dict[str, Any]:
    return {"id": str(entry.id), "key": entry.key, "title": entry.title, "content": entry.content,
            "tags": list(entry.tags), "version": entry.version, "updated_at": entry.updated_at.isoformat()}  # fmt: skip


def memory_tools(store: MemoryStore) -> tuple[list[Tool], list[ToolPackage]]:
    """The memory tools over ``store``, and the ``memory`` package."""

    @tool(
        "memory_search@v1",
        description="Search the tenant's memory (full text, ranked). Returns ids, keys, titles and previews.",
        effect=ToolEffect.READ,
        capabilities={Capability.MEMORY},
    )
    async def memory_search(call: ToolCall, args: MemorySearchArgs) -> dict[str, Any]:
        hits = await store.search(call.ctx, args.query, max_results=args.max_results, tags=args.tags)
        return {"results": [{"id": str(h.id), "key": h.key, "title": h.title, "preview": h.preview,
                             "tags": list(h.tags), "rank": h.rank} for h in hits]}  # fmt: skip

    @tool(
        "memory_get@v1",
        description="Read one memory entry in full, by id or key.",
        effect=ToolEffect.READ,
        capabilities={Capability.MEMORY},
    )
    async def memory_get(call: ToolCall, args: MemoryGetArgs) -> dict[str, Any]:
        if args.id is not None:
            return entry_json(await store.get(call.ctx, args.id))
        assert args.key is not None
        return entry_json(await store.get_by_key(call.ctx, args.key))

    @tool(
        "memory_put@v1",
        description="Save a memory entry under a key: creates it, or updates it (the old version is kept).",
        effect=ToolEffect.WRITE,
        capabilities={Capability.MEMORY},
    )
    async def memory_put(call: ToolCall, args: MemoryPutArgs) -> dict[str, Any]:
        entry, change = await store.put(call.ctx, args.key, args.content, title=args.title, tags=args.tags)
        return {"id": str(entry.id), "key": entry.key, "version": entry.version, "change": change}

    @tool(
        "memory_forget@v1",
        description=(
            "Forget a memory entry, by id or key: it is no longer found or read. The tenant's owner or admin "
            "can restore it; saving the same key again brings it back with new content."
        ),
        effect=ToolEffect.WRITE,
        capabilities={Capability.MEMORY},
    )
    async def memory_forget(call: ToolCall, args: MemoryForgetArgs) -> dict[str, Any]:
        ref: uuid.UUID | str | None = args.id if args.id is not None else args.key
        assert ref is not None
        entry = await store.forget(call.ctx, ref)
        return {"id": str(entry.id), "key": entry.key, "version": entry.version, "change": "deleted"}

    tools = [memory_search, memory_get, memory_put, memory_forget]
    package = ToolPackage(
        "memory", "The tenant's memory: search, read, save and forget entries.", tuple(t.name for t in tools)
    )
    return tools, [package]
