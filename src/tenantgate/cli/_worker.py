"""`tenantgate worker`: runs directives from the PostgreSQL job queue, with retries and backoff.

Several workers may share the queue. A worker killed at any point loses no directive: its
jobs are re-queued by the others (or by itself, restarted) once its heartbeat stops, and
the directive's lease and attempt fence make the re-run safe.
"""

from __future__ import annotations

import asyncio
import signal

from tenantgate.cli._common import err, load_settings
from tenantgate.directives import WorkerTiming
from tenantgate.errors import ConfigurationError
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.redact import Redactor

__all__ = ["worker"]


def worker() -> None:
    """Run directives from the queue (needs TENANTGATE_DIRECTIVES=queue)."""
    settings = load_settings()
    if settings.directives != "queue":
        raise ConfigurationError("tenantgate worker serves the directive queue: set TENANTGATE_DIRECTIVES=queue.")
    redactor = Redactor()
    configure_logging(settings.log_level, redactor=redactor)
    installation = Installation.open(settings)

    async def run() -> None:
        services = Services.build(installation, redactor=redactor)
        assert services.queue is not None
        await services.db.verify()
        await services.start()
        loop = asyncio.get_running_loop()
        serving = asyncio.create_task(
            services.queue.serve(
                services.directives.execute,
                concurrency=settings.worker_concurrency,
                timing=WorkerTiming(
                    heartbeat_s=settings.worker_heartbeat_s, stalled_after_s=settings.worker_stalled_after_s
                ),
            )
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, serving.cancel)
        err.print("[green]tenantgate worker[/green] serving the directive queue")
        try:
            await serving
        except asyncio.CancelledError:
            pass
        finally:
            await services.stop()

    asyncio.run(run())
