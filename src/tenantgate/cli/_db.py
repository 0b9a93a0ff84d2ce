"""`tenantgate db`: set up roles and schema, migrate, print connection URLs."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantgate.cli._citus import citus_plan_command
from tenantgate.cli._common import load_settings, out
from tenantgate.config import Settings
from tenantgate.errors import InvalidInput
from tenantgate.installation import Installation
from tenantgate.store import RoleNames, provision

__all__ = ["db_app"]

db_app = typer.Typer(help="Database set-up and access.", no_args_is_help=True)


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
        settings = load_settings()
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
    settings = load_settings()
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
    out.print(Installation.open(load_settings(), migrate_schema=False).url(role), soft_wrap=True)


db_app.command("citus-plan")(citus_plan_command)
