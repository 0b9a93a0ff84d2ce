"""`tenantgate serve`: the HTTP API, on the embedded PostgreSQL unless a database URL is set."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from tenantgate.cli._common import err, load_settings
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.errors import ConfigurationError
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.redact import Redactor
from tenantgate.store import write_private
from tenantgate.tracing import configure_tracing

__all__ = ["check_exposure", "serve"]


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """saas never answers the network in clear text unless a TLS-terminating proxy is declared."""
    if settings.mode is not DeploymentMode.SAAS or is_loopback(host):
        return
    if settings.tls_cert is None and not settings.trusted_proxies:
        raise ConfigurationError(
            f"saas mode will not serve {host} over plain HTTP: API keys and tenant data would cross the "
            "network in clear text. Give a certificate (--tls-cert/--tls-key or TENANTGATE_TLS_CERT/"
            "TENANTGATE_TLS_KEY), or, behind a TLS-terminating proxy, name its address with "
            "--trusted-proxy (TENANTGATE_TRUSTED_PROXIES)."
        )


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate chain (TENANTGATE_TLS_CERT).")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="The certificate's PEM private key (TENANTGATE_TLS_KEY).")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            help="Address or CIDR of a TLS-terminating proxy in front (repeatable; TENANTGATE_TRUSTED_PROXIES): "
            "only its X-Forwarded-For/-Proto headers are believed."
        ),
    ] = None,
) -> None:
    """Run the HTTP API (embedded PostgreSQL unless TENANTGATE_DATABASE_URL is set)."""
    import uvicorn

    from tenantgate.api import create_app

    overrides: dict[str, object] = {}
    if tls_cert is not None or tls_key is not None:
        overrides.update(tls_cert=tls_cert, tls_key=tls_key)
    if trusted_proxy:
        overrides["trusted_proxies"] = tuple(trusted_proxy)
    settings = load_settings(**overrides)
    check_exposure(settings, host)
    for name, path in (("--tls-cert", settings.tls_cert), ("--tls-key", settings.tls_key)):
        if path is not None and not path.is_file():
            raise ConfigurationError(f"{name}: {path} is not a readable file.")
    for warning in settings.transport_warnings():
        err.print(f"[bold red]WARNING[/bold red] {warning}")
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
    scheme = "https" if settings.tls_cert is not None else "http"
    err.print(f"[bold]tenantgate[/bold] {settings.mode.value} mode, {where}, on {scheme}://{host}:{port}")
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
        f"  curl -H 'Authorization: Bearer <key>' {scheme}://{host}:{port}/v1/whoami"
    )
    # uvicorn re-raises SIGTERM after its graceful shutdown; exit normally instead, so the
    # embedded server below is stopped rather than left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            create_app(services),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            ssl_certfile=settings.tls_cert,
            ssl_keyfile=settings.tls_key,
            # uvicorn believes X-Forwarded-* from 127.0.0.1 by default; tenantgate only from a named proxy.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=list(settings.trusted_proxies) or None,
        )
    finally:
        if installation.embedded is not None:
            installation.embedded.stop()
