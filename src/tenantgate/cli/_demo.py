"""`tenantgate demo`: two saas tenants, scripted attacks and ordinary work, the audit trail verified."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from tenantgate.cli._common import err, out
from tenantgate.demo import DemoReport, run_demo
from tenantgate.logs import configure_logging

__all__ = ["demo"]


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Keep the demo's embedded PostgreSQL here (default: a temporary directory, removed after)."),
    ] = None,
    audit_rows: Annotated[int, typer.Option(help="Audit events to print per tenant (the newest).", min=0)] = 25,
) -> None:
    """Show the boundary at work: embedded PostgreSQL, loopback fakes for every external API, no network."""
    configure_logging("error")
    scratch: Path | None = None
    if data_dir is None:
        scratch = Path(tempfile.mkdtemp(prefix="tenantgate-demo-"))
        data_dir = scratch / "data"
    try:
        report = run_demo(data_dir, lambda step: err.print(f"[dim]· {step}[/dim]"))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    _render(report, audit_rows)
    if not report.passed:
        err.print("[red]The demo's checks did not all hold: see the table above.[/red]")
        raise typer.Exit(1)


def _render(report: DemoReport, audit_rows: int) -> None:
    runs = Table(title="Conversations (saas mode, scripted planner)", show_lines=True)
    for column in ("tenant", "user says", "gate decided", "ran", "run ended"):
        runs.add_column(column, overflow="fold")
    for c in report.conversations:
        decided = "\n".join(f"{tool}: {code}" for tool, code in c.decisions) or "allowed"
        ran = "\n".join(f"{tool}: {outcome}" for tool, outcome in c.results) or "nothing"
        ended = c.status + (f"\n“{c.reply}”" if c.reply else "")
        runs.add_row(c.tenant, c.prompt, decided, ran, ended)
    out.print(runs)

    for tenant, all_events in report.audit.items():
        # Every request's authentication is an audit event too; the story is in the others.
        events = [e for e in all_events if e["action"] != "auth.succeeded"]
        shown = min(audit_rows, len(events))
        trail = Table(title=f"Audit trail of {tenant}: newest {shown} of {len(all_events)} events (logins left out)")
        for column in ("seq", "action", "decision", "code", "tool"):
            trail.add_column(column)
        for event in events[-audit_rows:] if audit_rows else []:
            trail.add_row(
                str(event["seq"]), event["action"], event.get("decision") or "", event.get("code") or "",
                event.get("tool") or "",
            )  # fmt: skip
        out.print(trail)

    chains = ", ".join(
        f"{tenant}: {'verified' if ok else 'BROKEN'} ({n} events, head {head})"
        for tenant, (ok, n, head) in report.chains.items()
    )
    out.print(f"Audit chains: {chains}. WhatsApp messages the fake Cloud API received: {report.whatsapp_sent}.")

    checks = Table(title="What the demo showed", show_lines=False)
    for column in ("", "claim", "evidence"):
        checks.add_column(column, overflow="fold")
    for check in report.checks:
        checks.add_row("[green]✓[/green]" if check.passed else "[red]✗[/red]", check.claim, check.evidence)
    out.print(checks)
    verdict = "every check held" if report.passed else "SOME CHECKS FAILED"
    out.print(Panel(f"max_damage <= granted_capabilities: {verdict}.", expand=False))
