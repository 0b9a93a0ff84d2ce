"""`tenantgate history`: a tenant's deleted items, their versions, and restore (platform operations).

One command per action for every kind (memory, skill, cron, heartbeat, policy, credential).
Items are named by id; skills by name or id; the policy needs none (a tenant has one).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from tenantgate.cli._common import TenantOpt, out, run, tenant_context
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.installation import Services

__all__ = ["history_app"]

history_app = typer.Typer(
    help="Deleted items, version history and restore of a tenant's memory, skills, schedules, policy, credentials.",
    no_args_is_help=True,
)


class Kind(StrEnum):
    MEMORY = "memory"
    SKILL = "skill"
    CRON = "cron"
    HEARTBEAT = "heartbeat"
    POLICY = "policy"
    CREDENTIAL = "credential"


KindArg = Annotated[Kind, typer.Argument(help="memory, skill, cron, heartbeat, policy or credential.")]
RefArg = Annotated[str | None, typer.Argument(help="The item's id (a skill's name or id; none for policy).")]


def _id(kind: Kind, ref: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(str(ref))
    except ValueError:
        raise InvalidInput(f"A {kind.value} is named by its id here, not {str(ref)[:60]!r}.") from None


def _ref(kind: Kind, ref: str | None) -> str:
    if kind is not Kind.POLICY and not ref:
        raise InvalidInput(f"Name the {kind.value} (its id) to act on.")
    return ref or ""


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


@history_app.command("versions")
def history_versions(kind: KindArg, tenant: TenantOpt, ref: RefArg = None) -> None:
    """Every version of an item, oldest first (deleted items included)."""
    ref = _ref(kind, ref)

    async def action(s: Services) -> list[tuple[int, str, str]]:
        ctx = tenant_context(s, tenant)
        if kind is Kind.POLICY:
            return [(v.version, "saved", _when(v.created_at)) for v in await s.policies.versions(ctx)]
        rows: list[Any]
        if kind is Kind.SKILL:
            rows = await s.skills.history(ctx, ref)
        elif kind is Kind.MEMORY:
            rows = await s.memory.versions(ctx, _id(kind, ref))
        elif kind is Kind.CRON:
            rows = await s.cron.versions(ctx, _id(kind, ref))
        elif kind is Kind.HEARTBEAT:
            rows = await s.heartbeat.versions(ctx, _id(kind, ref))
        else:
            rows = await s.credentials.versions(ctx, _id(kind, ref))
        return [(v.version, v.change, _when(v.changed_at)) for v in rows]

    table = Table("version", "change", "at")
    for version, change, at in run(action):
        table.add_row(str(version), change, at)
    out.print(table)


@history_app.command("deleted")
def history_deleted(kind: KindArg, tenant: TenantOpt) -> None:
    """The tenant's deleted items of a kind, to find one to restore."""
    if kind is Kind.POLICY:
        raise InvalidInput("A policy is never deleted, only replaced: see `tenantgate history versions policy`.")

    async def action(s: Services) -> list[tuple[str, str, str]]:
        ctx = tenant_context(s, tenant)
        items: list[Any]
        if kind is Kind.MEMORY:
            items = [(e.id, e.key, e.deleted_at) for e in await s.memory.recent(ctx, limit=500, include_deleted=True)]
        elif kind is Kind.SKILL:
            items = [(x.id, x.name, x.deleted_at) for x in await s.skills.installed(ctx, include_deleted=True)]
        elif kind is Kind.CRON:
            items = [(j.id, j.name, j.deleted_at) for j in await s.cron.jobs(ctx, include_deleted=True)]
        elif kind is Kind.HEARTBEAT:
            items = [(t.id, t.name, t.deleted_at) for t in await s.heartbeat.tasks(ctx, include_deleted=True)]
        else:
            items = [(c.id, c.name, c.deleted_at) for c in await s.credentials.list(ctx, include_deleted=True)]
        return [(str(i), name, _when(at)) for i, name, at in items if at is not None]

    table = Table("id", "name", "deleted at")
    for row in run(action):
        table.add_row(*row)
    out.print(table)


@history_app.command("restore")
def history_restore(
    kind: KindArg,
    tenant: TenantOpt,
    ref: RefArg = None,
    version: Annotated[
        int | None, typer.Option(min=1, help="The version to bring back; default: the latest before deletion.")
    ] = None,
) -> None:
    """Restore an item to a version, as a new version (audited). Policy default: the version before the current."""
    ref = _ref(kind, ref)

    async def action(s: Services) -> int:
        ctx = tenant_context(s, tenant)
        restorers: dict[Kind, Callable[[TenantContext], Awaitable[Any]]] = {
            Kind.POLICY: lambda c: s.policies.restore(c, version),
            Kind.SKILL: lambda c: s.skills.restore(c, ref, version=version),
            Kind.MEMORY: lambda c: s.memory.restore(c, _id(kind, ref), version=version),
            Kind.CRON: lambda c: s.cron.restore(c, _id(kind, ref), version=version),
            Kind.HEARTBEAT: lambda c: s.heartbeat.restore(c, _id(kind, ref), version=version),
            Kind.CREDENTIAL: lambda c: s.credentials.restore(c, _id(kind, ref), version=version),
        }
        restored = await restorers[kind](ctx)
        return int(restored.version)

    new_version = run(action)
    out.print(f"Restored the {kind.value}: it is now at version {new_version}.")
