"""`tenantgate db citus-plan`: the statements that shard this database with Citus, from its catalog."""

from __future__ import annotations

import psycopg
import typer

from tenantgate.cli._common import load_settings, out
from tenantgate.installation import Installation
from tenantgate.store import CITUS_EXCEPTIONS, citus_plan

__all__ = ["citus_plan_command"]


def citus_plan_command() -> None:
    """Print the Citus plan (reference tables, distributed tables, what stays) and the rules the schema breaks.

    Exit 1 when a violation is not one of the documented exceptions (README, "Sharding with Citus").
    """
    installation = Installation.open(load_settings(), migrate_schema=False)
    with psycopg.connect(installation.url("app")) as conn:
        plan = citus_plan(conn)
    for line in plan.statements:
        out.print(line, soft_wrap=True)
    for violation in plan.violations:
        reason = CITUS_EXCEPTIONS.get(violation)
        note = f" (documented exception: {reason})" if reason else " (NOT documented: fix the schema first)"
        out.print(f"-- violation: {violation}{note}", soft_wrap=True)
    if plan.undocumented:
        raise typer.Exit(1)
