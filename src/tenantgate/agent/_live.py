"""A run in progress in this process: its ordered events as they are persisted, for SSE followers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from tenantgate.agent._runs import RunEvent, RunStore
from tenantgate.context import TenantContext

__all__ = ["LiveRun"]


class LiveRun:
    """Appends events (persisted first, then published) and lets any number of followers read them in order.

    Persisting before publishing makes the stream and ``GET /v1/runs/{id}`` the same source:
    a follower never sees an event the database does not hold.
    """

    def __init__(self, *, ctx: TenantContext, run_id: uuid.UUID, session_id: uuid.UUID, store: RunStore) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.session_id = session_id
        self.events: list[RunEvent] = []
        self.done = False
        self.task: asyncio.Task[Any] | None = None
        self._store = store
        self._seq = 0
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # events of one run are numbered and written one at a time

    async def emit(self, kind: str, data: dict[str, Any], content: str | None = None) -> RunEvent:
        async with self._lock:
            self._seq += 1
            event = await self._store.append(self.ctx, self.run_id, self._seq, kind, data, content)
            self.events.append(event)
        self._changed.set()
        return event

    def close(self) -> None:
        self.done = True
        self._changed.set()

    async def follow(self) -> AsyncIterator[RunEvent]:
        """Every event of the run, from the first, until it is finished."""
        index = 0
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.done:
                return
            self._changed.clear()
            await self._changed.wait()
