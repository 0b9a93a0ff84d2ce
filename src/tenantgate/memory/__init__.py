"""Tenant memory: rows by tenant, ranked full-text search, every version kept."""

from tenantgate.memory._store import (
    KEY_PATTERN,
    MAX_CONTENT_CHARS,
    MAX_KEY_CHARS,
    MAX_RESULTS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    TAG_PATTERN,
    MemoryEntry,
    MemoryHit,
    MemoryStore,
    MemoryVersion,
)

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
