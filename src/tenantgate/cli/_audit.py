"""`tenantgate audit`: prove the audit chains whole, and export them as JSON lines."""

from __future__ import annotations

import json
import sys
import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.audit import PLATFORM_CHAIN, ChainReport
from tenantgate.cli._common import err, out, parse_time, run
from tenantgate.errors import NotFound
from tenantgate.installation import Services

__all__ = ["audit_app"]

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

_CHAIN_HELP = f"A tenant id, or {PLATFORM_CHAIN} for the platform chain."


async def _known(s: Services, chain: uuid.UUID) -> None:
    # A mistyped id would otherwise "verify" as an empty, perfectly intact chain.
    if chain not in await s.audit.chains():
        raise NotFound(f"No tenant and no audit chain with id {chain}.")


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[uuid.UUID | None, typer.Option("--tenant", help=f"{_CHAIN_HELP} Default: every chain.")] = None,
) -> None:
    """Walk every chain (or one) from genesis to its head; exit 1 if any is broken."""

    async def action(s: Services) -> tuple[list[ChainReport], dict[uuid.UUID, str]]:
        if tenant is not None:
            await _known(s, tenant)
        chains = [tenant] if tenant is not None else await s.audit.chains()
        names = {t.id: t.name for t in await s.tenants.list()}
        return [await s.audit.verify(chain) for chain in chains], names

    reports, names = run(action)
    table = Table("chain", "name", "events", "head hash (record it elsewhere)", "status")
    for r in reports:
        name = "(platform)" if r.tenant_id == PLATFORM_CHAIN else names.get(r.tenant_id, "(no tenant)")
        status = "[green]ok[/green]" if r.ok else f"[red]broken at seq {r.first_broken_seq}[/red]"
        head = f"{r.head_seq}:{r.head_hash.hex()}" if r.head_hash else "-"
        table.add_row(str(r.tenant_id), name, str(r.events_checked), head, status)
    out.print(table)
    broken = [r for r in reports if not r.ok]
    for r in broken:
        err.print(f"[red]broken[/red] chain {r.tenant_id}: first broken event is seq {r.first_broken_seq}: {r.reason}")
    if broken:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    tenant: Annotated[uuid.UUID, typer.Option("--tenant", help=_CHAIN_HELP)],
    since: Annotated[str | None, typer.Option(help="Only events at or after this ISO time (with zone).")] = None,
) -> None:
    """Print a chain's events as JSON lines, in seq order; payloads included unless erased."""
    since_at = parse_time(since) if since is not None else None

    async def action(s: Services) -> None:
        await _known(s, tenant)
        async for event in s.audit.export(tenant, since=since_at):
            sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")

    run(action)
