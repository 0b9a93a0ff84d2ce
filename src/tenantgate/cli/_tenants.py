"""`tenantgate tenants`: create and list tenants."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import out, run

__all__ = ["tenants_app"]

tenants_app = typer.Typer(help="Create and list tenants.", no_args_is_help=True)


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits and hyphens.")],
    display_name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
) -> None:
    """Create a tenant and print its id."""
    tenant = run(lambda s: s.tenants.create(name, display_name=display_name))
    out.print(str(tenant.id))


@tenants_app.command("list")
def tenants_list() -> None:
    """List every tenant."""
    tenants = run(lambda s: s.tenants.list())
    table = Table("id", "name", "display name", "status", "created")
    for t in tenants:
        table.add_row(str(t.id), t.name, t.display_name, t.status.value, t.created_at.isoformat(timespec="seconds"))
    out.print(table)
