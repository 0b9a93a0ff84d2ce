"""In-process group commit: concurrent appends share one transaction, and one commit.

A chain's appends are serialised by its head row lock, and every transaction pays for its
BEGIN, its round trips and its COMMIT. Measured on the dev machine (benchmarks/README.md),
even a bare one-row INSERT per transaction tops out near 4,000/s with 16 connections, CPU
bound, so one event per transaction cannot reach the 5,000/s target, for one tenant or
for sixteen. So appends queue, and one flush task at a time writes everything queued:
appends that arrive while a transaction is in flight go together in the next one. At low
load a batch is one event and nothing waits for a timer; under load the batch grows with
the queue. Each caller awaits its own future, resolved only after the commit that holds
its event: durable when it returns.

A batch may hold several chains (``write_many``), each written under its own tenant. A
chain the batch could not lock without waiting, and every chain of a batch that failed
for any reason but an unavailable database, is written on its own (``write_one``), so one
busy or broken chain never holds up or fails the others.

Correctness never rests on this class: every write locks the chain's head in the
database, so other processes (and other instances in this one) interleave safely.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from tenantgate.audit._chain import Draft
from tenantgate.audit._event import AuditRecord
from tenantgate.errors import DatabaseUnavailable

__all__ = ["GroupCommit", "WriteMany", "WriteOne"]

# One committed transaction for several chains: the records written, and the chains skipped.
WriteMany = Callable[
    [Mapping[uuid.UUID, Sequence[Draft]]], Awaitable[tuple[dict[uuid.UUID, list[AuditRecord]], set[uuid.UUID]]]
]
# One committed transaction for one chain, waiting for its lock if need be.
WriteOne = Callable[[uuid.UUID, Sequence[Draft]], Awaitable[list[AuditRecord]]]

_Waiting = tuple[Draft, "asyncio.Future[AuditRecord]"]


class GroupCommit:
    """At most one batch transaction in flight; everything that arrives meanwhile goes in the next."""

    def __init__(self, *, write_many: WriteMany, write_one: WriteOne, max_batch: int = 1000) -> None:
        self._write_many = write_many
        self._write_one = write_one
        self._max_batch = max_batch
        self._queue: list[tuple[uuid.UUID, _Waiting]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    async def submit(self, chain: uuid.UUID, draft: Draft) -> AuditRecord:
        """Queue ``draft`` for ``chain``; its record once the transaction holding it has committed."""
        future: asyncio.Future[AuditRecord] = asyncio.get_running_loop().create_future()
        self._queue.append((chain, (draft, future)))
        if self._flusher is None:
            self._flusher = self._spawn(self._flush())
        # A cancelled caller does not cancel the write: its event may still be recorded, as
        # it would be had the cancellation come a moment after the commit.
        return await future

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _flush(self) -> None:
        try:
            while self._queue:
                taken = self._queue[: self._max_batch]
                del self._queue[: len(taken)]
                batch: dict[uuid.UUID, list[_Waiting]] = {}
                for chain, waiting in taken:
                    batch.setdefault(chain, []).append(waiting)
                await self._write_batch(batch)
        finally:
            # Nothing awaits between the last empty check and here: no submit slips in unseen.
            self._flusher = None
            _cancel([waiting for _, waiting in self._queue])
            self._queue.clear()

    async def _write_batch(self, batch: dict[uuid.UUID, list[_Waiting]]) -> None:
        everyone = [waiting for chain_waiting in batch.values() for waiting in chain_waiting]
        try:
            written, skipped = await self._write_many({c: [d for d, _ in w] for c, w in batch.items()})
        except DatabaseUnavailable as exc:
            # The commit may or may not have happened: retrying could record events twice.
            _fail(everyone, exc)
            return
        except Exception:  # noqa: BLE001 - rolled back for sure; each chain retries alone, below
            written, skipped = {}, set(batch)
        except BaseException:
            _cancel(everyone)
            raise
        for chain, records in written.items():
            _resolve(batch[chain], records)
        for chain in skipped:
            self._spawn(self._write_alone(chain, batch[chain]))

    async def _write_alone(self, chain: uuid.UUID, waiting: list[_Waiting]) -> None:
        try:
            records = await self._write_one(chain, [draft for draft, _ in waiting])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting caller, who raises it
            _fail(waiting, exc)
        except BaseException:
            _cancel(waiting)
            raise
        else:
            _resolve(waiting, records)


def _resolve(waiting: list[_Waiting], records: list[AuditRecord]) -> None:
    for (_, future), record in zip(waiting, records, strict=True):
        if not future.done():
            future.set_result(record)


def _fail(waiting: list[_Waiting], exc: Exception) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(exc)


def _cancel(waiting: list[_Waiting]) -> None:
    for _, future in waiting:
        if not future.done():
            future.cancel()
