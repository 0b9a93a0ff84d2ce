"""The artifact store as tools see it: ``call.store_artifact(...)`` lands here.

A tenant whose compliance mode keeps no raw content (hipaa, gdpr) gets nothing stored:
``store`` returns None and the tool hands the model no reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from tenantgate.artifacts._store import ArtifactStore
from tenantgate.context import TenantContext

__all__ = ["ToolArtifacts"]


class ToolArtifacts:
    """Stores tool output as artifacts, unless the tenant's compliance mode keeps no raw content."""

    def __init__(self, store: ArtifactStore, *, keeps_raw: Callable[[TenantContext], Awaitable[bool]]) -> None:
        self._store, self._keeps_raw = store, keeps_raw

    async def store(
        self, ctx: TenantContext, data: bytes, *, kind: str, tool: str, run_id: uuid.UUID | None
    ) -> uuid.UUID | None:
        if not await self._keeps_raw(ctx):
            return None
        artifact = await self._store.create(ctx, data, kind=kind, run_id=run_id, tool=tool)
        return artifact.id
