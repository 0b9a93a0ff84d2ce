"""`tenantgate limits`: show and set a tenant's limits (plan and overrides), and define plans."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import out, run
from tenantgate.errors import InvalidInput
from tenantgate.quotas import TenantLimits

__all__ = ["limits_app"]

limits_app = typer.Typer(help="Per-tenant rate limits, quotas and budgets.", no_args_is_help=True)

TenantOption = Annotated[uuid.UUID, typer.Option("--tenant", help="The tenant's id.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="NAME=VALUE, repeatable (e.g. tool_calls_per_day=100).")
]


def _pairs(items: list[str] | None) -> dict[str, int]:
    values: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise InvalidInput(f"--set takes NAME=VALUE with a whole number, not {item!r}.")
        values[name.strip()] = int(value)
    return values


def _show(resolved: TenantLimits) -> None:
    out.print(f"tenant {resolved.tenant_id}  plan: {resolved.plan or '(mode defaults)'}")
    table = Table("limit", "value", "source")
    for name, value in resolved.limits.model_dump().items():
        table.add_row(name, str(value), "override" if name in resolved.overrides else "plan/default")
    out.print(table)


@limits_app.command("show")
def limits_show(tenant: TenantOption) -> None:
    """Show a tenant's effective limits and where each comes from."""
    _show(run(lambda s: s.quotas.plans.tenant_limits_admin(tenant)))


@limits_app.command("set")
def limits_set(
    tenant: TenantOption,
    values: SetOption = None,
    plan: Annotated[str | None, typer.Option(help="Assign this plan.")] = None,
    clear: Annotated[bool, typer.Option(help="Drop earlier overrides first.")] = False,
) -> None:
    """Assign a plan and/or override limits for a tenant (audited)."""
    changes = _pairs(values)
    if not changes and plan is None and not clear:
        raise InvalidInput("Nothing to set: give --set NAME=VALUE, --plan or --clear.")
    _show(run(lambda s: s.quotas.plans.set_tenant(tenant, plan=plan, overrides=changes, clear=clear)))


@limits_app.command("plan")
def limits_plan(
    name: Annotated[str, typer.Argument(help="The plan's name: lowercase letters, digits, - and _.")],
    values: SetOption = None,
) -> None:
    """Create or replace a plan: limits over the mode's defaults (audited)."""
    checked = run(lambda s: s.quotas.plans.set_plan(name, _pairs(values)))
    out.print(f"plan {name}: {checked}")
