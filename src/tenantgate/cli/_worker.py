"""`tenantgate worker`: runs directives from the PostgreSQL job queue, with retries and backoff."""

from __future__ import annotations

import asyncio

from tenantgate.cli._common import err, load_settings
from tenantgate.errors import ConfigurationError
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.redact import Redactor
from tenantgate.tracing import configure_tracing
from tenantgate.worker import run_worker

__all__ = ["worker"]


def worker() -> None:
    """Run directives from the queue (needs TENANTGATE_DIRECTIVES=queue). Several may run at once."""
    settings = load_settings()
    if settings.directives != "queue":
        raise ConfigurationError("tenantgate worker serves the directive queue: set TENANTGATE_DIRECTIVES=queue.")
    redactor = Redactor()
    configure_logging(settings.log_level, redactor=redactor)
    configure_tracing(settings.otel_enabled)  # spans only with the otel extra installed and this on
    installation = Installation.open(settings)
    for warning in settings.transport_warnings():
        err.print(f"[bold red]WARNING[/bold red] {warning}")
    err.print("[green]tenantgate worker[/green] serving the directive queue")
    asyncio.run(run_worker(Services.build(installation, redactor=redactor)))
