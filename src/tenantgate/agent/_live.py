"""A run in progress in this process: its ordered events as they are persisted, for SSE followers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.agent._runs import RunEvent, RunStore
from tenantgate.context import TenantContext

__all__ = ["LiveRun"]


class LiveRun:
    """Appends events (persisted first, then published) and lets any number of followers read them in order.

    Persisting before publishing makes the stream and ``GET /v1/runs/{id}`` the same source:
    a follower never sees an event the database does not hold. Each write also reads the run's
    cancellation flag, so a cancel from another process is seen at the next step at no extra cost.
    """

    def __init__(
        self,
        *,
        ctx: TenantContext,
        run_id: uuid.UUID,
        session_id: uuid.UUID,
        store: RunStore,
        written: Sequence[RunEvent] = (),
    ) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.session_id = session_id
        self.events: list[RunEvent] = list(written)
        self.done = False
        self.cancel_requested = False
        self.task: asyncio.Task[Any] | None = None
        self._store = store
        self._seq = len(self.events)
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()  # events of one run are numbered and written one batch at a time
        self._staged: list[tuple[str, dict[str, Any], str | None]] = []

    def stage(self, kind: str, data: dict[str, Any], content: str | None = None) -> None:
        """Queue an event to be written with the next write, which the caller makes before anything else happens.

        For events that happen at the same moment as the next one (a planner step and its first tool call):
        one transaction instead of two, same order, same content.
        """
        self._staged.append((kind, data, content))

    async def emit(self, kind: str, data: dict[str, Any], content: str | None = None) -> RunEvent:
        return (await self.emit_many([(kind, data, content)]))[0]

    async def emit_many(
        self,
        items: Sequence[tuple[str, dict[str, Any], str | None]],
        *,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> list[RunEvent]:
        """Write ``items`` as consecutive events in one transaction (with ``also``'s work), then publish them."""
        async with self._lock:
            staged = len(self._staged)
            items = [*self._staged, *items]
            numbered = [(self._seq + n, kind, data, content) for n, (kind, data, content) in enumerate(items, 1)]
            events, self.cancel_requested = await self._store.append(self.ctx, self.run_id, numbered, also=also)
            del self._staged[:staged]  # only once written: a failed write leaves them for the run's last word
            self._seq += len(events)
            self.events.extend(events)
        self._changed.set()
        return events

    async def flush(self) -> None:
        """Write staged events now."""
        if self._staged:
            await self.emit_many([])

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
