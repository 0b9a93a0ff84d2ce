"""`tenantgate principals`: users and service accounts inside a tenant."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import TenantOpt, out, run, tenant_context
from tenantgate.context import PrincipalKind, Role

__all__ = ["principals_app"]

principals_app = typer.Typer(help="Users and service accounts inside a tenant.", no_args_is_help=True)


@principals_app.command("create")
def principals_create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Display name.")],
    role: Annotated[list[Role], typer.Option(help="Role (repeatable).")],
    kind: Annotated[PrincipalKind, typer.Option(help="user or service_account.")] = PrincipalKind.USER,
    external_id: Annotated[str | None, typer.Option(help="Subject to match in JWTs.")] = None,
) -> None:
    """Create a principal in a tenant and print its id."""
    principal = run(
        lambda s: s.principals.create(
            tenant_context(s, tenant), name=name, kind=kind, roles=frozenset(role), external_id=external_id
        )
    )
    out.print(str(principal.id))


@principals_app.command("list")
def principals_list(tenant: TenantOpt) -> None:
    """List a tenant's principals."""
    principals = run(lambda s: s.principals.list(tenant_context(s, tenant)))
    table = Table("id", "kind", "name", "roles", "external id")
    for p in principals:
        table.add_row(str(p.id), p.kind.value, p.name, ",".join(p.roles), p.external_id or "")
    out.print(table)


@principals_app.command("set-password")
def principals_set_password(
    tenant: TenantOpt,
    principal: Annotated[uuid.UUID, typer.Option("--principal", help="The user's principal id.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="TENANTGATE_CONSOLE_PASSWORD",
            help="The console password (prompted for; or TENANTGATE_CONSOLE_PASSWORD).",
        ),
    ],
) -> None:
    """Set a user's admin-console password (stored as an scrypt hash; ends the user's console sessions)."""
    run(lambda s: s.passwords.set(tenant_context(s, tenant), principal, password))
    out.print("Console password set.")
