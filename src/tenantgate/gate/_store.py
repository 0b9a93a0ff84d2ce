"""Policy state in PostgreSQL: versioned tenant policies, kill switches, compliance modes.

Every write notifies ``tenantgate_policy`` inside its own transaction, so every process's
cache hears of it at commit (see ``_cache.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import require_manager
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.gate._compiled import Switches, TenantView, compile_policy
from tenantgate.gate._compliance import PROFILES, ComplianceMode
from tenantgate.gate._policy import PolicyDocument
from tenantgate.store import Database, restore_target, tables
from tenantgate.tools import ToolRegistry

__all__ = ["CHANNEL", "PLATFORM", "PolicyStore", "PolicyVersion", "SwitchInfo", "SwitchScope"]

CHANNEL = "tenantgate_policy"
PLATFORM = "platform"
_tp, _ts, _ps, _t = tables.tenant_policies, tables.tenant_switches, tables.platform_switches, tables.tenants
_NOTIFY = sa.text(f"SELECT pg_notify('{CHANNEL}', :payload)")
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('tenantgate.policy:' || :tenant))")


class SwitchScope(StrEnum):
    ALL = "all"  # every tool
    AI = "ai"  # every AI execution: agent turns, scheduled runs, planner calls
    TOOL = "tool"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version: int
    document: PolicyDocument
    created_at: datetime | None
    created_by: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class SwitchInfo:
    id: uuid.UUID
    scope: SwitchScope
    target: str
    reason: str
    set_by: str
    set_at: datetime


def _switches(rows: list[Any]) -> Switches:
    return Switches(
        all=any(r.scope == SwitchScope.ALL for r in rows),
        ai=any(r.scope == SwitchScope.AI for r in rows),
        tools=frozenset(r.target for r in rows if r.scope == SwitchScope.TOOL),
        integrations=frozenset(r.target for r in rows if r.scope == SwitchScope.INTEGRATION),
    )


def _info(row: Any) -> SwitchInfo:
    return SwitchInfo(row.id, SwitchScope(row.scope), row.target, row.reason, row.set_by, row.set_at)


def _check_switch(scope: SwitchScope, target: str, reason: str, *, platform: bool) -> None:
    # A platform 'ai' switch pauses every tenant's AI execution; humans' direct calls go on.
    if (scope in (SwitchScope.ALL, SwitchScope.AI)) != (target == ""):
        raise InvalidInput(f"A {scope.value} switch takes {'no target' if target else 'a target'}.")
    if not 1 <= len(reason) <= 500:
        raise InvalidInput("Say why the switch is set (1 to 500 characters): the audit trail keeps it.")


def _switch_event(info: SwitchInfo, state: str, *, platform: bool) -> AuditEvent:
    return AuditEvent(
        action="kill_switch.changed",
        tool=info.target if info.scope is SwitchScope.TOOL else None,
        payload={"switch_id": str(info.id), "scope": info.scope.value, "target": info.target, "state": state,
                 "reason": info.reason, "set_by": info.set_by, "level": "platform" if platform else "tenant"},
    )  # fmt: skip


class PolicyStore:
    def __init__(self, *, db: Database, registry: ToolRegistry, audit: AuditLog) -> None:
        self._db = db
        self._registry = registry
        self._audit = audit
        self._subscribers: list[Callable[[str], None]] = []

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(tenant id or "platform")`` after this process commits a change.

        Other processes learn of it through NOTIFY; this one should not wait for that.
        """
        self._subscribers.append(callback)

    def _changed(self, payload: str) -> None:
        for callback in self._subscribers:
            callback(payload)

    # --- reading (the cache's loader) -----------------------------------------------------

    async def load_view(self, ctx: TenantContext) -> TenantView:
        """Compile the tenant's current policy, switches and compliance mode, as of one snapshot."""
        async with self._db.tenant(ctx) as conn:
            current = await self._current(conn, ctx.tenant_id)
            mode = (await conn.execute(sa.select(_t.c.compliance_mode).where(_t.c.id == ctx.tenant_id))).scalar_one()
            rows = (await conn.execute(sa.select(_ts).where(_ts.c.tenant_id == ctx.tenant_id))).all()
        return compile_policy(
            ctx.tenant_id, current.version, current.document, self._registry,
            compliance=PROFILES[ComplianceMode(mode)], switches=_switches(list(rows)),
        )  # fmt: skip

    async def load_platform(self) -> Switches:
        async with self._db.admin() as conn:
            return _switches(list((await conn.execute(sa.select(_ps))).all()))

    # --- tenant policy --------------------------------------------------------------------

    async def policy(self, ctx: TenantContext) -> PolicyVersion:
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            return await self._current(conn, ctx.tenant_id)

    async def set_policy(self, ctx: TenantContext, document: PolicyDocument | dict[str, Any]) -> PolicyVersion:
        """Validate against this process's registry, then store as the next version."""
        require_manager(ctx)
        if not isinstance(document, PolicyDocument):
            try:
                document = PolicyDocument.model_validate(document)
            except ValidationError as exc:
                raise InvalidInput(f"The policy was not saved: {exc.error_count()} schema errors.",
                                   errors=exc.errors(include_url=False, include_context=False)) from exc  # fmt: skip
        document.check(self._registry)
        async with self._db.tenant(ctx) as conn:
            await conn.execute(_LOCK, {"tenant": str(ctx.tenant_id)})
            version = (await self._current(conn, ctx.tenant_id)).version + 1
            row = (
                await conn.execute(
                    sa.insert(_tp)
                    .values(tenant_id=ctx.tenant_id, version=version, document=document.model_dump(mode="json"),
                            created_by=ctx.principal_id)
                    .returning(_tp.c.created_at)
                )
            ).one()  # fmt: skip
            summary = {
                "version": version,
                "packages": [i.package for i in document.packages],
                "grants": [g.id for g in document.grants],
                "forbids": [f.id for f in document.forbids],
            }
            await self._audit.append(conn, ctx, AuditEvent(action="policy.changed", payload=summary))
            await conn.execute(_NOTIFY, {"payload": str(ctx.tenant_id)})
        self._changed(str(ctx.tenant_id))
        return PolicyVersion(version, document, row.created_at, ctx.principal_id)

    async def versions(self, ctx: TenantContext) -> list[PolicyVersion]:
        """Every saved version of the tenant's policy, oldest first (owner/admin)."""
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(sa.select(_tp).where(_tp.c.tenant_id == ctx.tenant_id).order_by(_tp.c.version))
            ).all()
        return [PolicyVersion(r.version, PolicyDocument.model_validate(r.document), r.created_at, r.created_by)
                for r in rows]  # fmt: skip

    async def restore(self, ctx: TenantContext, version: int | None = None) -> PolicyVersion:
        """Save version ``version``'s document (default: the one before the current) as the next version.

        A policy is never deleted, only replaced, so a restore is a new version with an old
        document; it is validated against this process's registry like any new policy.
        """
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            await conn.execute(_LOCK, {"tenant": str(ctx.tenant_id)})
            current = (await self._current(conn, ctx.tenant_id)).version
            if version is None:
                if current < 2:
                    raise InvalidInput("There is no earlier policy version to go back to; name a version instead.")
                version = current - 1
            history = (
                await conn.execute(
                    sa.select(_tp.c.version).where(_tp.c.tenant_id == ctx.tenant_id).order_by(_tp.c.version)
                )
            ).scalars().all()  # fmt: skip
            target = restore_target([(v, "saved") for v in history], requested=version, deleted=False,
                                    deletion="deleted", what="policy")  # fmt: skip
            stored = (
                await conn.execute(
                    sa.select(_tp.c.document).where(_tp.c.tenant_id == ctx.tenant_id, _tp.c.version == target)
                )
            ).scalar_one()
            document = PolicyDocument.model_validate(stored)
            document.check(self._registry)
            new_version = current + 1
            row = (
                await conn.execute(
                    sa.insert(_tp)
                    .values(tenant_id=ctx.tenant_id, version=new_version, document=document.model_dump(mode="json"),
                            created_by=ctx.principal_id)
                    .returning(_tp.c.created_at)
                )
            ).one()  # fmt: skip
            payload = {"version": new_version, "from_version": target, "to_version": new_version,
                       "previous_version": current}  # fmt: skip
            await self._audit.append(conn, ctx, AuditEvent(action="policy.restored", payload=payload))
            await conn.execute(_NOTIFY, {"payload": str(ctx.tenant_id)})
        self._changed(str(ctx.tenant_id))
        return PolicyVersion(new_version, document, row.created_at, ctx.principal_id)

    async def _current(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> PolicyVersion:
        row = (
            await conn.execute(
                sa.select(_tp).where(_tp.c.tenant_id == tenant_id).order_by(_tp.c.version.desc()).limit(1)
            )
        ).one_or_none()
        if row is None:  # no policy yet: nothing installed, nothing granted
            return PolicyVersion(0, PolicyDocument(), None, None)
        return PolicyVersion(row.version, PolicyDocument.model_validate(row.document), row.created_at, row.created_by)

    # --- kill switches --------------------------------------------------------------------

    async def set_tenant_switch(
        self, ctx: TenantContext, scope: SwitchScope, target: str = "", *, reason: str, set_by: str
    ) -> SwitchInfo:
        """Turn a switch on for one tenant. Setting one that is already on returns it unchanged."""
        require_manager(ctx)
        _check_switch(scope, target, reason, platform=False)
        values = {"tenant_id": ctx.tenant_id, "id": uuid.uuid4(), "scope": scope.value, "target": target,
                  "reason": reason, "set_by": set_by}  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            await conn.execute(pg_insert(_ts).values(values).on_conflict_do_nothing())
            row = (
                await conn.execute(
                    sa.select(_ts).where(_ts.c.tenant_id == ctx.tenant_id, _ts.c.scope == scope.value,
                                         _ts.c.target == target)
                )
            ).one()  # fmt: skip
            await self._audit.append(conn, ctx, _switch_event(_info(row), "on", platform=False))
            await conn.execute(_NOTIFY, {"payload": str(ctx.tenant_id)})
        self._changed(str(ctx.tenant_id))
        return _info(row)

    async def clear_tenant_switch(self, ctx: TenantContext, switch_id: uuid.UUID) -> SwitchInfo:
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.delete(_ts).where(_ts.c.tenant_id == ctx.tenant_id, _ts.c.id == switch_id).returning(*_ts.c)
                )
            ).one_or_none()
            if row is None:
                raise NotFound("No such kill switch in this tenant.")
            await self._audit.append(conn, ctx, _switch_event(_info(row), "off", platform=False))
            await conn.execute(_NOTIFY, {"payload": str(ctx.tenant_id)})
        self._changed(str(ctx.tenant_id))
        return _info(row)

    async def tenant_switches(self, ctx: TenantContext) -> list[SwitchInfo]:
        async with self._db.tenant(ctx) as conn:
            rows = await conn.execute(sa.select(_ts).where(_ts.c.tenant_id == ctx.tenant_id).order_by(_ts.c.set_at))
            return [_info(r) for r in rows]

    async def set_platform_switch(
        self,
        scope: SwitchScope,
        target: str = "",
        *,
        reason: str,
        set_by: str,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> SwitchInfo:
        """Turn a switch on for every tenant (a platform operation). ``actor``: the acting platform key."""
        _check_switch(scope, target, reason, platform=True)
        values = {"id": uuid.uuid4(), "scope": scope.value, "target": target, "reason": reason, "set_by": set_by}
        async with self._db.admin() as conn:
            await conn.execute(pg_insert(_ps).values(values).on_conflict_do_nothing())
            row = (await conn.execute(sa.select(_ps).where(_ps.c.scope == scope.value, _ps.c.target == target))).one()
            event = _switch_event(_info(row), "on", platform=True)
            await self._audit.append_platform(conn, event, actor=actor, request_id=request_id)
            await conn.execute(_NOTIFY, {"payload": PLATFORM})
        self._changed(PLATFORM)
        return _info(row)

    async def clear_platform_switch(self, switch_id: uuid.UUID) -> SwitchInfo:
        async with self._db.admin() as conn:
            row = (await conn.execute(sa.delete(_ps).where(_ps.c.id == switch_id).returning(*_ps.c))).one_or_none()
            if row is None:
                raise NotFound("No such platform kill switch.")
            await self._audit.append_platform(conn, _switch_event(_info(row), "off", platform=True))
            await conn.execute(_NOTIFY, {"payload": PLATFORM})
        self._changed(PLATFORM)
        return _info(row)

    async def platform_switches(self) -> list[SwitchInfo]:
        async with self._db.admin() as conn:
            return [_info(r) for r in await conn.execute(sa.select(_ps).order_by(_ps.c.set_at))]

    # --- incident actions: switches by what they switch, not by id --------------------------

    async def resume_tenant_switch(self, ctx: TenantContext, scope: SwitchScope, target: str = "") -> SwitchInfo | None:
        """Turn the tenant's ``scope``/``target`` switch off; None (and nothing audited) if it was not on."""
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    sa.delete(_ts)
                    .where(_ts.c.tenant_id == ctx.tenant_id, _ts.c.scope == scope.value, _ts.c.target == target)
                    .returning(*_ts.c)
                )
            ).one_or_none()
            if row is None:
                return None
            await self._audit.append(conn, ctx, _switch_event(_info(row), "off", platform=False))
            await conn.execute(_NOTIFY, {"payload": str(ctx.tenant_id)})
        self._changed(str(ctx.tenant_id))
        return _info(row)

    async def resume_platform_switch(
        self, scope: SwitchScope, target: str = "", *, actor: uuid.UUID | None = None, request_id: str | None = None
    ) -> SwitchInfo | None:
        """Turn the platform's ``scope``/``target`` switch off; None (and nothing audited) if it was not on."""
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.delete(_ps).where(_ps.c.scope == scope.value, _ps.c.target == target).returning(*_ps.c)
                )
            ).one_or_none()
            if row is None:
                return None
            event = _switch_event(_info(row), "off", platform=True)
            await self._audit.append_platform(conn, event, actor=actor, request_id=request_id)
            await conn.execute(_NOTIFY, {"payload": PLATFORM})
        self._changed(PLATFORM)
        return _info(row)

    def integrations(self) -> frozenset[str]:
        """The integrations this installation's tools belong to (``ToolSpec.integration``)."""
        return frozenset(t.spec.integration for t in self._registry if t.spec.integration is not None)

    def check_integration(self, name: str) -> None:
        """Refuse an integration name no registered tool belongs to (a typo must not look like a fix)."""
        known = self.integrations()
        if name not in known:
            raise NotFound(f"No tool belongs to an integration named {name!r}; known: {', '.join(sorted(known))}.")

    # --- compliance mode ------------------------------------------------------------------

    async def set_compliance(self, tenant_id: uuid.UUID, mode: ComplianceMode) -> None:
        """A platform operation: the tenant's compliance mode adds restrictions to its policy."""
        async with self._db.admin() as conn:
            result = await conn.execute(sa.update(_t).where(_t.c.id == tenant_id).values(compliance_mode=mode.value))
            if result.rowcount == 0:
                raise NotFound("No such tenant.")
            event = AuditEvent(action="compliance.changed", payload={"tenant_id": str(tenant_id), "mode": mode.value})
            await self._audit.append_platform(conn, event)
            await conn.execute(_NOTIFY, {"payload": str(tenant_id)})
        self._changed(str(tenant_id))
        # The tenant's own trail shows it too, for its auditors.
        await self._audit.record_as(tenant_id, AuditEvent(action="compliance.changed", payload={"mode": mode.value}))
