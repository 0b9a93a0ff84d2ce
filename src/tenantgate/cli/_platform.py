"""`tenantgate platform`: platform operator credentials."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import err, out, run

__all__ = ["platform_app"]

platform_app = typer.Typer(help="Platform operator credentials.", no_args_is_help=True)
platform_keys_app = typer.Typer(help="Platform keys (tgp_...) for /v1/platform endpoints.", no_args_is_help=True)
platform_app.add_typer(platform_keys_app, name="keys")


@platform_keys_app.command("create")
def platform_keys_create(name: Annotated[str, typer.Argument(help="A label.")]) -> None:
    """Create a platform key for /v1/platform endpoints; shown once."""
    _, key = run(lambda s: s.platform_keys.create(name))
    err.print("Platform key (shown once; store it now):")
    out.print(key)


@platform_keys_app.command("list")
def platform_keys_list() -> None:
    keys = run(lambda s: s.platform_keys.list())
    table = Table("id", "prefix", "name", "state", "last used")
    for k in keys:
        last = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
        table.add_row(str(k.id), k.prefix, k.name, "revoked" if k.revoked_at else "active", last)
    out.print(table)


@platform_keys_app.command("revoke")
def platform_keys_revoke(key_id: Annotated[uuid.UUID, typer.Argument()]) -> None:
    run(lambda s: s.platform_keys.revoke(key_id))
    out.print(f"Revoked {key_id}.")
