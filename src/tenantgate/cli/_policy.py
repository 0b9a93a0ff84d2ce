"""`tenantgate policy` and `tenantgate kill-switch`: a tenant's policy, compliance mode and switches."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from tenantgate.cli._common import TenantOpt, err, out, run, tenant_context
from tenantgate.errors import InvalidInput
from tenantgate.gate import ComplianceMode, PolicyDocument, SwitchInfo, SwitchScope
from tenantgate.installation import Services

__all__ = ["kill_switch_app", "policy_app"]

policy_app = typer.Typer(help="A tenant's tool policy and compliance mode.", no_args_is_help=True)
kill_switch_app = typer.Typer(help="Kill switches: for every tenant, or one.", no_args_is_help=True)

OptionalTenant = Annotated[uuid.UUID | None, typer.Option("--tenant", help="One tenant; omit for the platform.")]
_CLI = "cli"


@policy_app.command("show")
def policy_show(tenant: TenantOpt) -> None:
    """Print the tenant's current policy (JSON) with its version."""
    current = run(lambda s: s.policies.policy(tenant_context(s, tenant)))
    out.print_json(json.dumps({"version": current.version, "document": current.document.model_dump(mode="json")}))


@policy_app.command("set")
def policy_set(
    tenant: TenantOpt,
    file: Annotated[Path, typer.Option("--file", help="A JSON policy document; - for standard input.")],
) -> None:
    """Validate a policy document and store it as the tenant's next version."""
    text = typer.get_text_stream("stdin").read() if str(file) == "-" else file.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{file} is not JSON: {exc}") from exc
    saved = run(lambda s: s.policies.set_policy(tenant_context(s, tenant), document))
    out.print(f"Saved policy version {saved.version}.")


@policy_app.command("check")
def policy_check(
    files: Annotated[list[Path], typer.Argument(help="JSON policy documents.")],
) -> None:
    """Validate policy documents against this installation's tools (its mode and plugins); store nothing."""
    documents = {}
    for path in files:
        try:
            documents[path] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{path}: {exc}") from exc

    async def check(services: Services) -> list[tuple[Path, str | None]]:
        results: list[tuple[Path, str | None]] = []
        for path, raw in documents.items():
            try:
                PolicyDocument.model_validate(raw).check(services.registry)
            except InvalidInput as exc:
                results.append((path, exc.message))
            except ValidationError as exc:
                results.append((path, str(exc)))
            else:
                results.append((path, None))
        return results

    problems = 0
    for path, problem in run(check):
        if problem is None:
            out.print(f"ok {path}")
        else:
            problems += 1
            err.print(f"[red]refused[/red] {path}: {problem}")
    if problems:
        raise typer.Exit(1)


@policy_app.command("compliance")
def policy_compliance(tenant: TenantOpt, mode: Annotated[ComplianceMode, typer.Argument()]) -> None:
    """Set the tenant's compliance mode (standard, hipaa, gdpr)."""
    run(lambda s: s.policies.set_compliance(tenant, mode))
    out.print(f"Tenant {tenant} is now in {mode.value} compliance mode.")


def _table(switches: list[SwitchInfo]) -> Table:
    table = Table("id", "scope", "target", "reason", "set by", "set at")
    for s in switches:
        table.add_row(str(s.id), s.scope.value, s.target, s.reason, s.set_by, s.set_at.isoformat(timespec="seconds"))
    return table


@kill_switch_app.command("set")
def switch_set(
    scope: Annotated[SwitchScope, typer.Option(help="all, ai, tool or integration.")],
    reason: Annotated[str, typer.Option(help="Why: kept in the audit trail.")],
    target: Annotated[str, typer.Option(help="The tool (name@v1) or integration; empty for all/ai.")] = "",
    tenant: OptionalTenant = None,
) -> None:
    """Turn a switch on. Every process denies what it covers within a second."""
    if tenant is None:
        info = run(lambda s: s.policies.set_platform_switch(scope, target, reason=reason, set_by=_CLI))
    else:
        info = run(
            lambda s: s.policies.set_tenant_switch(tenant_context(s, tenant), scope, target, reason=reason, set_by=_CLI)
        )
    out.print(str(info.id))


@kill_switch_app.command("clear")
def switch_clear(switch_id: Annotated[uuid.UUID, typer.Argument()], tenant: OptionalTenant = None) -> None:
    """Turn a switch off again."""
    if tenant is None:
        run(lambda s: s.policies.clear_platform_switch(switch_id))
    else:
        run(lambda s: s.policies.clear_tenant_switch(tenant_context(s, tenant), switch_id))
    out.print(f"Cleared {switch_id}.")


@kill_switch_app.command("list")
def switch_list(tenant: OptionalTenant = None) -> None:
    """The switches that are on, for the platform or one tenant."""
    if tenant is None:
        switches = run(lambda s: s.policies.platform_switches())
    else:
        switches = run(lambda s: s.policies.tenant_switches(tenant_context(s, tenant)))
    out.print(_table(switches))
