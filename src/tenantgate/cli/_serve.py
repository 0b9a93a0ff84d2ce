"""`tenantgate serve`: the HTTP API, on the embedded PostgreSQL unless a database URL is set."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer

from tenantgate.cli._common import err, load_settings
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.redact import Redactor
from tenantgate.store import write_private
from tenantgate.tracing import configure_tracing

__all__ = ["serve"]


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API (embedded PostgreSQL unless TENANTGATE_DATABASE_URL is set)."""
    import uvicorn

    from tenantgate.api import create_app

    settings = load_settings()
    redactor = Redactor()  # one for the process: logs, audit and tools share its known secrets
    configure_logging(settings.log_level, redactor=redactor)
    configure_tracing(settings.otel_enabled)  # spans only with the otel extra installed and this on
    installation = Installation.open(settings)
    services = Services.build(installation, redactor=redactor)

    async def bootstrap() -> str | None:
        # A throwaway engine: the server's own engine must be created on uvicorn's loop.
        once = Services.build(installation, redactor=redactor)
        try:
            await once.db.verify()
            return await once.platform_keys.ensure_bootstrap_key()
        finally:
            await once.db.dispose()

    first_key = asyncio.run(bootstrap())
    where = f"embedded PostgreSQL in {settings.data_dir}" if settings.embedded else "external PostgreSQL"
    err.print(f"[bold]tenantgate[/bold] {settings.mode.value} mode, {where}, on http://{host}:{port}")
    if first_key is not None:
        if settings.embedded:
            path = settings.data_dir / "platform-admin.key"
            write_private(path, first_key + "\n")
            err.print(f"First start: a platform admin key for /v1/platform was written to {path} (mode 0600).")
        else:
            err.print(f"First start: platform admin key (shown once, store it now): {first_key}")
    err.print(
        "Next: create a tenant and a key for it, then call the API:\n"
        "  tenantgate tenants create acme\n"
        "  tenantgate keys create --tenant <tenant id> --role owner\n"
        f"  curl -H 'Authorization: Bearer <key>' http://{host}:{port}/v1/whoami"
    )
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally instead, so the
    # embedded server below is stopped rather than left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(services), host=host, port=port, log_config=None, access_log=False)
    finally:
        if installation.embedded is not None:
            installation.embedded.stop()
