"""`tenantgate retention`: show and set a tenant's retention periods; run the retention job."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tenantgate.cli._common import TenantOpt, err, out, run, tenant_context
from tenantgate.errors import InvalidInput
from tenantgate.installation import Services
from tenantgate.retention import DEFAULT, DataClass, RetentionReport, TenantRetention

__all__ = ["retention_app"]

retention_app = typer.Typer(
    help="How long each data class is kept, and the job that removes what aged out.", no_args_is_help=True
)


def _days(value: int | None) -> str:
    return "forever" if value is None else f"{value} d"


def _show(r: TenantRetention) -> None:
    out.print(f"tenant {r.tenant_id}  compliance mode: {r.compliance_mode}")
    table = Table("class", "kept", "source", "platform default", "compliance floor")
    for c in r.classes.values():
        floor = "-" if c.floor_days is None else _days(c.floor_days)
        table.add_row(c.data_class.value, _days(c.days), c.source, _days(c.default_days), floor)
    out.print(table)


def _changes(items: list[str]) -> dict[str, object]:
    changes: dict[str, object] = {}
    for item in items:
        name, sep, value = item.partition("=")
        text = value.strip().lower()
        if not sep or not (text.isdigit() or text in ("forever", DEFAULT)):
            raise InvalidInput(f"Give CLASS=DAYS, CLASS=forever or CLASS=default, not {item!r}.")
        changes[name.strip()] = int(text) if text.isdigit() else None if text == "forever" else DEFAULT
    return changes


@retention_app.command("show")
def retention_show(tenant: TenantOpt) -> None:
    """Show a tenant's retention per data class and where each period comes from."""
    _show(run(lambda s: s.retention.periods.get(tenant_context(s, tenant))))


@retention_app.command("set")
def retention_set(
    tenant: TenantOpt,
    values: Annotated[
        list[str], typer.Argument(help=f"CLASS=DAYS|forever|default; classes: {', '.join(c.value for c in DataClass)}.")
    ],
) -> None:
    """Override (or reset to the platform default) a tenant's retention per class (audited)."""
    changes = _changes(values)
    _show(run(lambda s: s.retention.periods.set(tenant_context(s, tenant), changes)))


@retention_app.command("run")
def retention_run(
    tenant: Annotated[uuid.UUID | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; change nothing.")] = False,
) -> None:
    """Remove what aged out, per tenant and class, in batches; --dry-run shows what would go."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err) as bar:
        task = bar.add_task("retention: starting", total=None)

        def progress(tenant_id: uuid.UUID, data_class: DataClass, rows: int) -> None:
            bar.update(task, description=f"tenant {tenant_id}  {data_class.value}: {rows} rows")

        async def action(s: Services) -> RetentionReport:
            return await s.retention.run(tenant_id=tenant, dry_run=dry_run, progress=progress)

        report = run(action)
    if report.skipped:
        out.print("Another retention run holds the lock: nothing done (try again when it has finished).")
        return
    title = "retention dry run: what would go (nothing changed)" if report.dry_run else "retention: what went"
    table = Table("tenant", "class", "rows", "oldest" if report.dry_run else "batches", "cutoff", "status", title=title)
    for t in report.tenants:
        for c in t.classes:
            detail = (c.oldest.isoformat(timespec="seconds") if c.oldest else "-") if report.dry_run else str(c.batches)
            cutoff = c.cutoff.isoformat(timespec="seconds") if c.cutoff else "kept forever"
            status = f"[red]failed: {c.error}[/red]" if c.error else "[green]ok[/green]"
            table.add_row(str(t.tenant_id), c.data_class.value, str(c.count), detail, cutoff, status)
    out.print(table)
    if report.failed:
        raise typer.Exit(1)
