"""The ``tenantgate`` command. One module per command group.

CLI commands are platform operations by whoever can read the installation's data
directory (or holds its database URLs); tenant-scoped ones run as the tenant's
``system`` principal, under the same row-level security as API traffic.
"""

from __future__ import annotations

import sys

import typer

from tenantgate.cli._audit import audit_app
from tenantgate.cli._common import err
from tenantgate.cli._config import config_app
from tenantgate.cli._db import db_app
from tenantgate.cli._demo import demo
from tenantgate.cli._drill import drill_app
from tenantgate.cli._history import history_app
from tenantgate.cli._incident import incident_app
from tenantgate.cli._keys import keys_app
from tenantgate.cli._limits import limits_app
from tenantgate.cli._platform import platform_app
from tenantgate.cli._policy import kill_switch_app, policy_app
from tenantgate.cli._principals import principals_app
from tenantgate.cli._retention import retention_app
from tenantgate.cli._serve import serve
from tenantgate.cli._skills import skills_app
from tenantgate.cli._tenants import tenants_app
from tenantgate.cli._vault import credentials_app, vault_app
from tenantgate.cli._worker import worker
from tenantgate.errors import TenantgateError

__all__ = ["app", "main"]

app = typer.Typer(help="tenantgate: the capability boundary for multi-tenant AI agents.", no_args_is_help=True)
app.command()(serve)
app.command()(demo)
app.command()(worker)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(tenants_app, name="tenants")
app.add_typer(principals_app, name="principals")
app.add_typer(keys_app, name="keys")
app.add_typer(platform_app, name="platform")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(kill_switch_app, name="kill-switch")
app.add_typer(vault_app, name="vault")
app.add_typer(credentials_app, name="credentials")
app.add_typer(skills_app, name="skills")
app.add_typer(limits_app, name="limits")
app.add_typer(history_app, name="history")
app.add_typer(incident_app, name="incident")
app.add_typer(retention_app, name="retention")
app.add_typer(drill_app, name="drill")


def main() -> None:
    try:
        app()
    except TenantgateError as exc:
        err.print(f"[red]error[/red] ({exc.code}): {exc.message}")
        sys.exit(2)
