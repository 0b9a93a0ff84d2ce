"""The directive job queue on procrastinate (PostgreSQL), in its own ``procrastinate`` schema.

One job per directive, deferred with a queueing lock on the directive id so a directive
is queued at most once at a time. Jobs carry ids only (tenant, directive): the arguments
stay in the tenant's RLS-protected row. A worker killed with ``kill -9`` leaves its job in
``doing``; every worker re-queues jobs of workers whose heartbeat stopped, and the
directive's lease and attempt fence make the re-run safe. The queue's database faults are
the database's: a job that cannot be deferred refuses the request with ``database_unavailable``,
and a worker's sweep of stalled jobs keeps running through an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
from procrastinate import App, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued, AppNotOpen, ConnectorException

from tenantgate.errors import DatabaseUnavailable
from tenantgate.logs import get_logger

__all__ = ["QUEUE", "QUEUE_SCHEMA", "DirectiveQueue", "WorkerTiming"]

QUEUE = "directives"
QUEUE_SCHEMA = "procrastinate"
_TASK = "tenantgate.run_directive"
_SIGNAL_TASK = "tenantgate.process_signal"
_RESUME_TASK = "tenantgate.resume_run"
_log = get_logger("tenantgate.directives")
# How long a defer may take before it is refused. The pool waits up to 30 s for a connection
# while the database is down (long enough for a worker to ride out a restart); a request should
# not hang that long. A defer cut short may still have happened: the client's retry under the
# same key finds the job queued, and the directive's claim fences a second run.
_DEFER_TIMEOUT_S = 5.0
_DOWN = (ConnectorException, psycopg.OperationalError, psycopg.InterfaceError, OSError)


@contextlib.asynccontextmanager
async def _refused_while_down() -> AsyncIterator[None]:
    """The queue's database unreachable (or too slow) is the database unavailable: refused, never a 500."""
    try:
        async with asyncio.timeout(_DEFER_TIMEOUT_S):
            yield
    except (*_DOWN, TimeoutError) as exc:
        raise DatabaseUnavailable(
            "The job queue's database is unavailable; the request was refused. Retry when it is back."
        ) from exc


Handler = Callable[[uuid.UUID, uuid.UUID], Awaitable[object]]


class WorkerTiming:
    """How often a worker proves it is alive, and when its silence makes its jobs stalled."""

    def __init__(self, *, heartbeat_s: float = 5.0, stalled_after_s: float = 20.0, poll_s: float = 2.0) -> None:
        if not 0 < heartbeat_s < stalled_after_s:
            raise ValueError("the heartbeat must be shorter than the stall timeout")
        self.heartbeat_s = heartbeat_s
        self.stalled_after_s = stalled_after_s
        self.poll_s = poll_s


class DirectiveQueue:
    """Defers directive jobs, and (in ``tenantgate worker``) serves them with retries and backoff."""

    def __init__(self, conninfo: str, *, max_attempts: int = 5, backoff_s: int = 1) -> None:
        connector = PsycopgConnector(
            conninfo=conninfo, min_size=1, max_size=4, kwargs={"options": f"-c search_path={QUEUE_SCHEMA}"}
        )
        self.app = App(connector=connector)
        self._handler: Handler | None = None
        retry = RetryStrategy(max_attempts=max_attempts - 1 if max_attempts > 1 else 0, exponential_wait=backoff_s)

        @self.app.task(name=_TASK, queue=QUEUE, retry=retry)
        async def run_directive(tenant_id: str, directive_id: str) -> None:
            if self._handler is None:
                raise RuntimeError("this process defers directives; only a worker runs them")
            await self._handler(uuid.UUID(tenant_id), uuid.UUID(directive_id))

        @self.app.task(name=_SIGNAL_TASK, queue=QUEUE, retry=retry)
        async def process_signal(tenant_id: str, signal_id: str) -> None:
            if self._signal_handler is None:
                raise RuntimeError("this process records signals; only a worker processes them")
            await self._signal_handler(uuid.UUID(tenant_id), uuid.UUID(signal_id))

        @self.app.task(name=_RESUME_TASK, queue=QUEUE, retry=retry)
        async def resume_run(tenant_id: str, run_id: str) -> None:
            if self._resume_handler is None:
                raise RuntimeError("this process queues run resumptions; only a worker runs them")
            await self._resume_handler(uuid.UUID(tenant_id), uuid.UUID(run_id))

        self._resume_task = resume_run
        self._resume_handler: Handler | None = None
        self._task = run_directive
        self._signal_task = process_signal
        self._signal_handler: Handler | None = None
        self._opened = False

    async def open(self) -> None:
        if not self._opened:
            await self.app.open_async()
            self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self.app.close_async()
            self._opened = False

    async def _reopen(self, every_s: float) -> None:
        """Drop the connection pool and open a new one, retrying every ``every_s`` until the database answers."""
        with contextlib.suppress(*_DOWN):
            await self.close()
        self._opened = False
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.open()
                return
            except _DOWN as exc:
                _log.warning("directive.worker_database_down", error=type(exc).__name__, retry_in_s=every_s)

    async def enqueue(self, tenant_id: uuid.UUID, directive_id: uuid.UUID) -> None:
        """Queue the directive's job; already queued (and not started) means nothing to do."""
        async with _refused_while_down():
            await self.open()
            with contextlib.suppress(AlreadyEnqueued):
                await self._task.configure(queueing_lock=f"directive:{directive_id}").defer_async(
                    tenant_id=str(tenant_id), directive_id=str(directive_id)
                )

    async def enqueue_signal(self, tenant_id: uuid.UUID, signal_id: uuid.UUID) -> None:
        """Queue a recorded signal's processing (its subscribers run in the worker)."""
        async with _refused_while_down():
            await self.open()
            with contextlib.suppress(AlreadyEnqueued):
                await self._signal_task.configure(queueing_lock=f"signal:{signal_id}").defer_async(
                    tenant_id=str(tenant_id), signal_id=str(signal_id)
                )

    async def enqueue_resume(self, tenant_id: uuid.UUID, run_id: uuid.UUID) -> None:
        """Queue the resumption of a run whose confirmation was decided (a worker continues it)."""
        async with _refused_while_down():
            await self.open()
            with contextlib.suppress(AlreadyEnqueued):
                await self._resume_task.configure(queueing_lock=f"resume:{run_id}").defer_async(
                    tenant_id=str(tenant_id), run_id=str(run_id)
                )

    async def requeue_stalled(self, timing: WorkerTiming) -> int:
        """Put back the jobs of workers that stopped sending heartbeats (killed, or cut off)."""
        manager = self.app.job_manager
        stalled = list(await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=timing.stalled_after_s))
        for job in stalled:
            await manager.retry_job(job)
            _log.warning("directive.job_requeued", job_id=job.id, task=job.task_name)
        return len(stalled)

    async def serve(
        self,
        handler: Handler,
        *,
        signals: Handler | None = None,
        resumes: Handler | None = None,
        concurrency: int = 4,
        timing: WorkerTiming | None = None,
    ) -> None:
        """Run a worker until cancelled: jobs run ``handler(tenant_id, directive_id)``, ``signals``, ``resumes``."""
        timing = timing or WorkerTiming()
        self._handler = handler
        self._signal_handler = signals
        self._resume_handler = resumes
        await self.open()

        async def sweep() -> None:
            while True:
                try:
                    await self.requeue_stalled(timing)
                except (*_DOWN, AppNotOpen) as exc:  # down (or being reopened) for now: sweep again later
                    _log.warning("directive.sweep_failed", error=type(exc).__name__)
                await asyncio.sleep(timing.stalled_after_s / 2)

        sweeper = asyncio.create_task(sweep())
        try:
            while True:
                try:
                    await self.app.run_worker_async(
                        queues=[QUEUE], concurrency=concurrency, install_signal_handlers=False,
                        update_heartbeat_interval=timing.heartbeat_s, stalled_worker_timeout=timing.stalled_after_s,
                        fetch_job_polling_interval=timing.poll_s,
                    )  # fmt: skip
                    return
                except _DOWN as exc:
                    # The database went away under the worker (a restart, a failover): procrastinate's
                    # worker stops. Start afresh (new pool, new worker) once it answers again; the
                    # jobs the old one held are re-queued as stalled, fenced by the directive's claim.
                    _log.warning("directive.worker_database_lost", error=type(exc).__name__, retry_in_s=timing.poll_s)
                    await self._reopen(timing.poll_s)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
