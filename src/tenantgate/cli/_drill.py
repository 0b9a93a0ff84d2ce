"""`tenantgate drill restore`: exercise the restore playbook on a scratch database, as a checklist."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy.engine import make_url

from tenantgate.cli._common import load_settings, out
from tenantgate.drills import DrillReport, RestoreDrill, embedded_bin_dir
from tenantgate.errors import ConfigurationError
from tenantgate.installation import Installation
from tenantgate.logs import configure_logging
from tenantgate.vault import key_provider_from_settings

__all__ = ["drill_app"]

drill_app = typer.Typer(
    help="Operational drills: prove the playbooks work before they are needed.", no_args_is_help=True
)

_MARK = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]", "skipped": "[yellow]SKIP[/yellow]"}


def restore_drill(installation: Installation) -> RestoreDrill:
    """The drill for this installation: the maintenance URL from the settings, the embedded superuser or the owner."""
    settings = installation.settings
    if settings.drill_database_url is not None:
        maintenance = settings.drill_database_url.get_secret_value()
    elif installation.embedded is not None:
        maintenance = installation.url("superuser")
    elif installation.owner_url is not None:
        maintenance = installation.owner_url
    else:
        raise ConfigurationError(
            "The restore drill needs TENANTGATE_DRILL_DATABASE_URL: a role that reads every row (superuser or "
            "BYPASSRLS) and may create databases."
        )
    database = make_url(installation.app_url).database
    if database is None:
        raise ConfigurationError("TENANTGATE_DATABASE_URL names no database.")
    return RestoreDrill(
        maintenance_url=maintenance, database=database, app_url=installation.app_url,
        admin_url=installation.admin_url, roles=installation.roles,
        key_provider=key_provider_from_settings(settings), bin_dirs=[settings.pg_bin_dir, embedded_bin_dir()],
    )  # fmt: skip


def print_report(report: DrillReport) -> None:
    table = Table("", "step", "detail", title="restore drill")
    for step in report.steps:
        table.add_row(_MARK[step.status], step.name, step.detail)
    out.print(table)
    out.print("[green]restore drill passed[/green]" if report.ok else "[red]restore drill FAILED[/red]")


@drill_app.command("restore")
def drill_restore(
    tenant: Annotated[uuid.UUID | None, typer.Option("--tenant", help="Check only this tenant.")] = None,
) -> None:
    """Back up with pg_dump, restore into a scratch database, check counts, credentials, audit; drop it."""
    settings = load_settings()
    configure_logging("warning")
    installation = Installation.open(settings)
    report = asyncio.run(restore_drill(installation).run(tenant_id=tenant))
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)
