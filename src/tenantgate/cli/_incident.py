"""`tenantgate incident`: revoke access, rotate a data key, pause AI, disable an integration.

The same actions as ``/v1/platform/.../incident/...``, run by whoever holds the
installation's configuration. Each is audited by the service that does it and holds in
every process within a second (README "Incident response").
"""

from __future__ import annotations

import getpass
import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import TenantOpt, out, run, tenant_context
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.gate import SwitchInfo, SwitchScope
from tenantgate.installation import Services

__all__ = ["incident_app"]

incident_app = typer.Typer(
    help="Incident controls: revoke keys, disable principals, rotate a data key, pause AI, disable integrations.",
    no_args_is_help=True,
)

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why: kept in the audit trail.")]
MaybeTenant = Annotated[uuid.UUID | None, typer.Option("--tenant", help="Tenant id.")]
PlatformFlag = Annotated[bool, typer.Option("--platform", help="Every tenant at once.")]


def _by() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a container): the CLI is still the actor
        return "cli"


async def _tenant(s: Services, tenant: uuid.UUID) -> TenantContext:
    await s.tenants.get(tenant)  # an unknown tenant is NotFound before anything changes
    return tenant_context(s, tenant)


def _one_scope(tenant: uuid.UUID | None, platform: bool) -> None:
    if (tenant is None) == (not platform):
        raise InvalidInput("Say --tenant <id> for one tenant, or --platform for every tenant (one of them).")


def _switch(info: SwitchInfo) -> str:
    target = f" {info.target}" if info.target else ""
    return f"{info.scope.value}{target} switch {info.id} is on (set by {info.set_by}: {info.reason})."


@incident_app.command("revoke-keys")
def revoke_keys(
    tenant: TenantOpt,
    reason: ReasonOpt,
    principal: Annotated[
        uuid.UUID | None, typer.Option("--principal", help="Only this principal's keys. Default: every key.")
    ] = None,
    disable_principal: Annotated[
        bool, typer.Option("--disable-principal", help="Also disable the principal, so its JWTs stop too.")
    ] = False,
) -> None:
    """Revoke every API key of a tenant, or of one principal, at once."""
    if disable_principal and principal is None:
        raise InvalidInput("--disable-principal needs --principal: say which principal to disable.")

    async def action(s: Services) -> str:
        ctx = await _tenant(s, tenant)
        revoked = await s.keys.revoke_all(ctx, principal_id=principal, reason=reason, by=_by())
        done = f"Revoked {len(revoked)} keys" + (f" of principal {principal}." if principal else " of the tenant.")
        if disable_principal and principal is not None:
            await s.principals.disable(ctx, principal, reason=reason, by=_by())
            done += f" Disabled principal {principal}."
        return done

    out.print(run(action))


@incident_app.command("disable-principal")
def disable_principal(
    tenant: TenantOpt, principal: Annotated[uuid.UUID, typer.Argument(help="The principal.")], reason: ReasonOpt
) -> None:
    """Disable a principal: its API keys and JWTs are refused from the next request."""

    async def action(s: Services) -> None:
        await s.principals.disable(await _tenant(s, tenant), principal, reason=reason, by=_by())

    run(action)
    out.print(f"Disabled principal {principal}.")


@incident_app.command("enable-principal")
def enable_principal(
    tenant: TenantOpt, principal: Annotated[uuid.UUID, typer.Argument(help="The principal.")], reason: ReasonOpt
) -> None:
    """Let a disabled principal authenticate again (its revoked keys stay revoked)."""

    async def action(s: Services) -> None:
        await s.principals.enable(await _tenant(s, tenant), principal, reason=reason, by=_by())

    run(action)
    out.print(f"Enabled principal {principal}.")


@incident_app.command("rotate-data-key")
def rotate_data_key(tenant: TenantOpt, reason: ReasonOpt) -> None:
    """Re-seal a tenant's credentials under a new data key and destroy the old key."""

    async def action(s: Services) -> str:
        key_id, count = await s.credentials.rotate_data_key(await _tenant(s, tenant), reason=reason, by=_by())
        return f"Re-sealed {count} credentials under data key {key_id}; the old data key is destroyed."

    out.print(run(action))


@incident_app.command("pause-ai")
def pause_ai(reason: ReasonOpt, tenant: MaybeTenant = None, platform: PlatformFlag = False) -> None:
    """Stop AI execution (agent turns, scheduled runs, planner calls) for one tenant or every tenant."""
    _one_scope(tenant, platform)

    async def action(s: Services) -> SwitchInfo:
        if tenant is None:
            return await s.policies.set_platform_switch(SwitchScope.AI, reason=reason, set_by=_by())
        return await s.policies.set_tenant_switch(await _tenant(s, tenant), SwitchScope.AI, reason=reason, set_by=_by())

    out.print(("Platform " if tenant is None else f"Tenant {tenant}: ") + _switch(run(action)))


@incident_app.command("resume-ai")
def resume_ai(tenant: MaybeTenant = None, platform: PlatformFlag = False) -> None:
    """Let AI execution run again, for one tenant or (with --platform) every tenant."""
    _one_scope(tenant, platform)

    async def action(s: Services) -> SwitchInfo | None:
        if tenant is None:
            return await s.policies.resume_platform_switch(SwitchScope.AI)
        return await s.policies.resume_tenant_switch(await _tenant(s, tenant), SwitchScope.AI)

    info = run(action)
    where = "the platform" if tenant is None else f"tenant {tenant}"
    out.print(f"AI execution resumed for {where}." if info else f"AI execution was not paused for {where}.")


@incident_app.command("disable-integration")
def disable_integration(
    name: Annotated[str, typer.Argument(help="The integration, e.g. whatsapp.")], reason: ReasonOpt
) -> None:
    """Deny every tool of one integration, for every tenant."""

    async def action(s: Services) -> SwitchInfo:
        s.policies.check_integration(name)
        return await s.policies.set_platform_switch(SwitchScope.INTEGRATION, name, reason=reason, set_by=_by())

    out.print("Platform " + _switch(run(action)))


@incident_app.command("enable-integration")
def enable_integration(name: Annotated[str, typer.Argument(help="The integration, e.g. whatsapp.")]) -> None:
    """Allow an integration's tools again (tenants' own policies and switches still apply)."""

    async def action(s: Services) -> SwitchInfo | None:
        info = await s.policies.resume_platform_switch(SwitchScope.INTEGRATION, name)
        if info is None:
            s.policies.check_integration(name)
        return info

    info = run(action)
    out.print(f"Integration {name} enabled again." if info else f"Integration {name} was not disabled.")


@incident_app.command("status")
def status(tenant: MaybeTenant = None) -> None:
    """The switches in force: the platform's, and one tenant's with --tenant."""

    async def action(s: Services) -> list[tuple[str, SwitchInfo]]:
        found = [("platform", info) for info in await s.policies.platform_switches()]
        if tenant is not None:
            found += [("tenant", info) for info in await s.policies.tenant_switches(await _tenant(s, tenant))]
        return found

    table = Table("level", "id", "scope", "target", "reason", "set by", "set at")
    for level, info in run(action):
        table.add_row(level, str(info.id), info.scope.value, info.target, info.reason, info.set_by,
                      info.set_at.isoformat(timespec="seconds"))  # fmt: skip
    out.print(table)
