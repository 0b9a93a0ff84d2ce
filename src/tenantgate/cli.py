"""The ``tenantgate`` command: serve, database set-up, tenants, principals, keys, platform keys.

CLI commands are platform operations by whoever can read the installation's data
directory (or holds its database URLs); tenant-scoped ones run as the tenant's
``system`` principal, under the same row-level security as API traffic.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import InvalidInput, TenantgateError
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.store import RoleNames, provision, write_private

__all__ = ["app", "main"]

app = typer.Typer(help="tenantgate: the capability boundary for multi-tenant AI agents.", no_args_is_help=True)
db_app = typer.Typer(help="Database set-up and access.", no_args_is_help=True)
tenants_app = typer.Typer(help="Create and list tenants.", no_args_is_help=True)
principals_app = typer.Typer(help="Users and service accounts inside a tenant.", no_args_is_help=True)
keys_app = typer.Typer(help="Tenant API keys.", no_args_is_help=True)
platform_app = typer.Typer(help="Platform operator credentials.", no_args_is_help=True)
platform_keys_app = typer.Typer(help="Platform keys (tgp_...) for /v1/platform endpoints.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenants_app, name="tenants")
app.add_typer(principals_app, name="principals")
app.add_typer(keys_app, name="keys")
app.add_typer(platform_app, name="platform")
platform_app.add_typer(platform_keys_app, name="keys")

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)
T = TypeVar("T")

TenantOpt = Annotated[uuid.UUID, typer.Option("--tenant", help="Tenant id.")]


def _settings() -> Settings:
    return Settings()


def _run(action: Callable[[Services], Awaitable[T]]) -> T:
    settings = _settings()
    configure_logging("warning")
    installation = Installation.open(settings)

    async def go() -> T:
        services = Services.build(installation)
        try:
            await services.db.verify()
            return await action(services)
        finally:
            await services.db.dispose()

    return asyncio.run(go())


def _ctx(services: Services, tenant_id: uuid.UUID) -> TenantContext:
    return system_context(tenant_id, mode=services.settings.mode, request_id=f"cli-{uuid.uuid4().hex[:12]}")


_DURATION = re.compile(r"^(\d+)([smhd])$")


def parse_expiry(text: str) -> datetime:
    """``30d``, ``12h``, ``15m``, ``90s`` from now, or an ISO 8601 time with a zone."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
        return datetime.now(UTC) + timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"Cannot read {text!r} as a duration (30d, 12h) or an ISO time.") from exc
    if when.tzinfo is None:
        raise InvalidInput("Give the expiry time with a zone, e.g. 2027-01-01T00:00:00+00:00.")
    return when


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"Cannot read {text!r} as a duration: use e.g. 90s, 15m, 12h or 7d.")
    return timedelta(seconds=int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]])


# --- serve -------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API (embedded PostgreSQL unless TENANTGATE_DATABASE_URL is set)."""
    import uvicorn

    from tenantgate.api import create_app

    settings = _settings()
    configure_logging(settings.log_level)
    installation = Installation.open(settings)
    services = Services.build(installation)

    async def bootstrap() -> str | None:
        # A throwaway engine: the server's own engine must be created on uvicorn's loop.
        once = Services.build(installation)
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


# --- db ----------------------------------------------------------------------------------


@db_app.command("init")
def db_init(
    superuser_url: Annotated[
        str | None, typer.Option(help="A superuser URL of an external server. Omit for the embedded one.")
    ] = None,
    database: Annotated[str | None, typer.Option(help="Database to create/use (default: the URL's).")] = None,
    role_prefix: Annotated[
        str, typer.Option(help="Role names: PREFIX_owner, PREFIX_app, PREFIX_admin.")
    ] = "tenantgate",
) -> None:
    """Create the owner, app and admin roles and migrate. Re-running rotates the role passwords."""
    if superuser_url is None:
        settings = _settings()
        if not settings.embedded:
            raise InvalidInput("Give --superuser-url to initialise an external database.")
        Installation.open(settings)
        out.print(f"Embedded database ready in {settings.data_dir}.")
        return
    prefix = Settings(db_role_prefix=role_prefix).db_role_prefix  # validates the prefix
    urls = provision(superuser_url, roles=RoleNames.from_prefix(prefix), database=database)
    out.print("# Roles created and schema migrated. Configure tenantgate with:")
    out.print(f"TENANTGATE_DATABASE_URL={urls.app}", soft_wrap=True)
    out.print(f"TENANTGATE_ADMIN_DATABASE_URL={urls.admin}", soft_wrap=True)
    out.print(f"TENANTGATE_OWNER_DATABASE_URL={urls.owner}", soft_wrap=True)
    out.print(f"TENANTGATE_DB_ROLE_PREFIX={prefix}")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (as the owner role)."""
    settings = _settings()
    if not settings.embedded and settings.owner_database_url is None:
        raise InvalidInput("Set TENANTGATE_OWNER_DATABASE_URL to migrate an external database.")
    Installation.open(settings)
    out.print("Schema is up to date.")


@db_app.command("url")
def db_url(
    role: Annotated[str, typer.Option(help="owner, app, admin or superuser (embedded only).")] = "app",
) -> None:
    """Print a connection URL, e.g. for psql or pg_dump."""
    if role not in ("owner", "app", "admin", "superuser"):
        raise InvalidInput("--role is one of owner, app, admin, superuser.")
    out.print(Installation.open(_settings(), migrate_schema=False).url(role), soft_wrap=True)


# --- tenants -----------------------------------------------------------------------------


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits and hyphens.")],
    display_name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
) -> None:
    """Create a tenant and print its id."""
    tenant = _run(lambda s: s.tenants.create(name, display_name=display_name))
    out.print(str(tenant.id))


@tenants_app.command("list")
def tenants_list() -> None:
    """List every tenant."""
    tenants = _run(lambda s: s.tenants.list())
    table = Table("id", "name", "display name", "status", "created")
    for t in tenants:
        table.add_row(str(t.id), t.name, t.display_name, t.status.value, t.created_at.isoformat(timespec="seconds"))
    out.print(table)


# --- principals --------------------------------------------------------------------------


@principals_app.command("create")
def principals_create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[list[Role], typer.Option(help="Role (repeatable).")],
    kind: Annotated[PrincipalKind, typer.Option(help="user or service_account.")] = PrincipalKind.USER,
    external_id: Annotated[str | None, typer.Option(help="Subject to match in JWTs.")] = None,
) -> None:
    """Create a principal in a tenant and print its id."""
    principal = _run(
        lambda s: s.principals.create(
            _ctx(s, tenant), name=name, kind=kind, roles=frozenset(role), external_id=external_id
        )
    )
    out.print(str(principal.id))


@principals_app.command("list")
def principals_list(tenant: TenantOpt) -> None:
    """List a tenant's principals."""
    principals = _run(lambda s: s.principals.list(_ctx(s, tenant)))
    table = Table("id", "kind", "name", "roles", "external id")
    for p in principals:
        table.add_row(str(p.id), p.kind.value, p.name, ",".join(p.roles), p.external_id or "")
    out.print(table)


# --- keys --------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    tenant: TenantOpt,
    role: Annotated[list[Role] | None, typer.Option(help="Role (repeatable). Default: member.")] = None,
    principal: Annotated[
        uuid.UUID | None, typer.Option(help="Existing principal. Default: a new service account.")
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "cli",
    expires: Annotated[str | None, typer.Option(help="30d, 12h, or an ISO time with zone.")] = None,
) -> None:
    """Create an API key and print it. The key is shown once."""
    expires_at = parse_expiry(expires) if expires else None

    async def action(s: Services) -> str:
        ctx = _ctx(s, tenant)
        await s.tenants.get(tenant)
        roles = frozenset(role) if role else None
        principal_id = principal
        if principal_id is None:
            account = await s.principals.create(
                ctx, name=name, kind=PrincipalKind.SERVICE_ACCOUNT, roles=roles or frozenset({Role.MEMBER})
            )
            principal_id = account.id
        issued = await s.keys.create(ctx, principal_id=principal_id, roles=roles, name=name, expires_at=expires_at)
        return issued.key

    key = _run(action)
    err.print("API key (shown once; store it now):")
    out.print(key)


@keys_app.command("list")
def keys_list(tenant: TenantOpt) -> None:
    """List a tenant's keys (never their secrets)."""
    keys = _run(lambda s: s.keys.list(_ctx(s, tenant)))
    now = datetime.now(UTC)
    table = Table("id", "prefix", "name", "principal", "roles", "state", "expires", "last used")
    for k in keys:
        state = "revoked" if k.revoked_at else "active" if k.active(now) else "expired"
        table.add_row(
            str(k.id), k.prefix, k.name, str(k.principal_id), ",".join(k.roles), state,
            k.expires_at.isoformat(timespec="seconds") if k.expires_at else "never",
            k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never",
        )  # fmt: skip
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(
    tenant: TenantOpt,
    key_id: Annotated[uuid.UUID, typer.Argument(help="The key to replace.")],
    overlap: Annotated[str, typer.Option(help="How long the old key keeps working: 0s, 15m, 1h, 7d.")] = "1h",
) -> None:
    """Issue a replacement key; the old one keeps working for the overlap, then dies."""
    window = parse_duration(overlap)
    issued = _run(lambda s: s.keys.rotate(_ctx(s, tenant), key_id, overlap=window))
    err.print(f"New API key (shown once); the old key stops working in {overlap}:")
    out.print(issued.key)


@keys_app.command("revoke")
def keys_revoke(tenant: TenantOpt, key_id: Annotated[uuid.UUID, typer.Argument(help="The key to revoke.")]) -> None:
    """Revoke a key; it is refused from the next request on."""
    _run(lambda s: s.keys.revoke(_ctx(s, tenant), key_id))
    out.print(f"Revoked {key_id}.")


# --- platform keys -----------------------------------------------------------------------


@platform_keys_app.command("create")
def platform_keys_create(name: Annotated[str, typer.Argument(help="A label.")]) -> None:
    """Create a platform key for /v1/platform endpoints; shown once."""
    _, key = _run(lambda s: s.platform_keys.create(name))
    err.print("Platform key (shown once; store it now):")
    out.print(key)


@platform_keys_app.command("list")
def platform_keys_list() -> None:
    keys = _run(lambda s: s.platform_keys.list())
    table = Table("id", "prefix", "name", "state", "last used")
    for k in keys:
        last = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
        table.add_row(str(k.id), k.prefix, k.name, "revoked" if k.revoked_at else "active", last)
    out.print(table)


@platform_keys_app.command("revoke")
def platform_keys_revoke(key_id: Annotated[uuid.UUID, typer.Argument()]) -> None:
    _run(lambda s: s.platform_keys.revoke(key_id))
    out.print(f"Revoked {key_id}.")


def main() -> None:
    try:
        app()
    except TenantgateError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        sys.exit(2)
