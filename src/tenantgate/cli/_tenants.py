"""`tenantgate tenants`: create, list and purge tenants."""

from __future__ import annotations

import getpass
import os
import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import out, run
from tenantgate.installation import Services
from tenantgate.purge import PurgeRecord, PurgeState

__all__ = ["tenants_app"]

tenants_app = typer.Typer(help="Create, list and purge tenants.", no_args_is_help=True)


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


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): the uid says who
        user = str(os.getuid())
    return f"cli:{user}"[:200]


def _print_purge(record: PurgeRecord) -> None:
    out.print(f"purge {record.id} of tenant {record.tenant_id}: {record.state.value}")
    out.print(f"  reason: {record.reason}")
    out.print(f"  requested by {record.requested_by} at {record.requested_at.isoformat(timespec='seconds')}")
    if record.state is PurgeState.REQUESTED:
        out.print(f"  executes after {record.execute_after.isoformat(timespec='seconds')}")
    if record.cancelled_at is not None:
        out.print(f"  cancelled by {record.cancelled_by} at {record.cancelled_at.isoformat(timespec='seconds')}")
    if record.started_at is not None:
        finished = record.finished_at.isoformat(timespec="seconds") if record.finished_at else "-"
        out.print(f"  executed by {record.executed_by}: started {record.started_at.isoformat(timespec='seconds')},"
                  f" finished {finished}, steps done: {', '.join(record.steps) or '-'}")  # fmt: skip
    report = record.report
    rows = report.get("rows", {})
    if rows:
        table = Table("table", "rows deleted")
        for name, count in sorted(rows.items()):
            table.add_row(name, str(count))
        table.add_row("total", str(record.rows_deleted))
        out.print(table)
    for key in ("objects_deleted", "data_keys_destroyed", "tenant_kek_destroyed", "audit_events_erased",
                "platform_events_erased", "runs_cancelled", "directives_cancelled", "queued_jobs_dropped"):  # fmt: skip
        if key in report:
            out.print(f"  {key.replace('_', ' ')}: {report[key]}")
    if report.get("step_ms"):
        out.print("  ms per step: " + ", ".join(f"{step} {ms}" for step, ms in report["step_ms"].items()))


@tenants_app.command("purge")
def tenants_purge(
    tenant_id: Annotated[uuid.UUID, typer.Argument(help="Tenant id.")],
    reason: Annotated[
        str | None, typer.Option(help="Why (recorded): requests the purge and disables the tenant.")
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Execute a requested purge (after its grace period).")
    ] = False,
    now: Annotated[bool, typer.Option("--now", help="With --execute: do not wait for the grace period.")] = False,
    confirm: Annotated[
        bool, typer.Option("--confirm", help="With --now: yes, delete everything of this tenant.")
    ] = False,
    cancel: Annotated[bool, typer.Option("--cancel", help="Withdraw a purge that has not started executing.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Print the latest purge and its report.")] = False,
) -> None:
    """Purge a tenant in two steps: --reason requests (disables at once); --execute deletes (see README)."""
    chosen = [flag for flag, on in (("--reason", reason is not None), ("--execute", execute), ("--cancel", cancel),
                                    ("--show", show)) if on]  # fmt: skip
    if len(chosen) != 1:
        raise typer.BadParameter("Give exactly one of --reason TEXT, --execute, --cancel or --show.")
    operator = _operator()

    async def action(s: Services) -> PurgeRecord:
        if reason is not None:
            return await s.purges.request(tenant_id, reason=reason, requested_by=operator)
        if cancel:
            return await s.purges.cancel(tenant_id, cancelled_by=operator)
        if show:
            return await s.purges.get(tenant_id)
        # --confirm stands for typing the name: the CLI operator named the tenant by id already.
        name = (await s.tenants.get(tenant_id)).name if confirm else None
        return await s.purges.execute(tenant_id, executed_by=operator, now=now, confirm=name)

    _print_purge(run(action))
