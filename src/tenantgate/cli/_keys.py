"""`tenantgate keys`: tenant API keys: create (shown once), list, rotate, revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import TenantOpt, err, out, parse_duration, parse_expiry, run, tenant_context
from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Services

__all__ = ["keys_app"]

keys_app = typer.Typer(help="Tenant API keys.", no_args_is_help=True)


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
        ctx = tenant_context(s, tenant)
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

    key = run(action)
    err.print("API key (shown once; store it now):")
    out.print(key)


@keys_app.command("list")
def keys_list(tenant: TenantOpt) -> None:
    """List a tenant's keys (never their secrets)."""
    keys = run(lambda s: s.keys.list(tenant_context(s, tenant)))
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
    issued = run(lambda s: s.keys.rotate(tenant_context(s, tenant), key_id, overlap=window))
    err.print(f"New API key (shown once); the old key stops working in {overlap}:")
    out.print(issued.key)


@keys_app.command("revoke")
def keys_revoke(tenant: TenantOpt, key_id: Annotated[uuid.UUID, typer.Argument(help="The key to revoke.")]) -> None:
    """Revoke a key; it is refused from the next request on."""
    run(lambda s: s.keys.revoke(tenant_context(s, tenant), key_id))
    out.print(f"Revoked {key_id}.")
