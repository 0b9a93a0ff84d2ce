"""The directive worker loop, shared by ``tenantgate worker`` and anything that embeds a worker.

Several workers may share the queue. A worker killed at any point loses no directive: its
jobs are re-queued by the others (or by itself, restarted) once its heartbeat stops, and
the directive's lease and attempt fence make the re-run safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import sqlalchemy as sa

from tenantgate.directives import WorkerTiming
from tenantgate.errors import ConfigurationError, TenantgateError
from tenantgate.installation import Services
from tenantgate.logs import get_logger

__all__ = ["retention_loop", "run_worker"]

_log = get_logger("tenantgate.worker")


async def run_worker(services: Services) -> None:
    """Serve the directive queue until SIGINT/SIGTERM (or cancellation); then stop the services."""
    settings = services.settings
    if services.queue is None:
        raise ConfigurationError("The worker serves the directive queue: set TENANTGATE_DIRECTIVES=queue.")
    await services.db.verify()
    await services.start()
    loop = asyncio.get_running_loop()
    timing = WorkerTiming(heartbeat_s=settings.worker_heartbeat_s, stalled_after_s=settings.worker_stalled_after_s)
    serving = asyncio.create_task(
        services.queue.serve(
            services.directives.execute,
            signals=services.signals.process,
            resumes=services.runtime.resume,
            concurrency=settings.worker_concurrency,
            timing=timing,
        )
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, serving.cancel)
    schedules = asyncio.create_task(_run_schedules(services, settings.worker_schedule_poll_s))
    retention = asyncio.create_task(retention_loop(services, settings.retention_every_s))
    purges = asyncio.create_task(_run_purges(services, settings.worker_purge_poll_s))
    try:
        await serving
    except asyncio.CancelledError:
        pass
    finally:
        for task in (schedules, retention, purges):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await services.stop()


async def _run_schedules(services: Services, every_s: float) -> None:
    """Run due cron jobs and heartbeat tasks as agent turns, every ``every_s`` seconds."""
    while True:
        try:
            await services.schedules.run_due()
        except TenantgateError as exc:  # the database is away: try again on the next tick
            _log.warning("schedules.scan_failed", code=exc.code)
        await asyncio.sleep(every_s)


async def retention_loop(services: Services, every_s: float) -> None:
    """Apply every tenant's retention now and then every ``every_s`` seconds (0: never).

    Every worker runs this loop; the job's advisory lock lets one of them work at a time and
    the others skip that round.
    """
    if every_s <= 0:
        _log.info("retention.disabled")
        return
    while True:
        try:
            await services.retention.run()
        except TenantgateError as exc:  # the database is away: try again next round
            _log.warning("retention.run_failed", code=exc.code)
        except sa.exc.SQLAlchemyError as exc:  # kept data is the safe side; the next round retries
            _log.error("retention.run_failed", error=type(exc).__name__)
        await asyncio.sleep(every_s)


async def _run_purges(services: Services, every_s: float) -> None:
    """Execute purges whose grace period has passed, and finish interrupted ones, every ``every_s`` seconds."""
    while True:
        try:
            await services.purges.run_due()
        except TenantgateError as exc:  # the database is away: try again on the next tick
            _log.warning("purges.scan_failed", code=exc.code)
        await asyncio.sleep(every_s)
