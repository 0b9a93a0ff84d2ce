"""A tenant's limits are data: the mode's defaults, a named plan, and per-tenant overrides.

Resolution order for each limit: the tenant's override, else its plan's value, else the
deployment mode's default. Plans and overrides are written by the platform (admin role,
audited); the app role can only read them, so a tenant can never raise its own limits.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.store import Database
from tenantgate.store import tables as t

__all__ = ["Limits", "PlanStore", "TenantLimits"]

_Count = Field(ge=0, le=10**15)


class Limits(BaseModel):
    """Every per-tenant limit. Rates are per minute (short windows); budgets per day or month."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Rate limits (the `limits` library; memory or Redis).
    requests_per_minute_per_key: int = _Count
    requests_per_minute_per_tenant: int = _Count
    tool_calls_per_minute: int = _Count
    tool_calls_per_minute_per_tool: int = _Count
    outbound_per_minute: int = _Count
    outbound_per_minute_per_channel: int = _Count
    # Budgets (durable counters in PostgreSQL).
    llm_input_tokens_per_month: int = _Count
    llm_output_tokens_per_month: int = _Count
    cost_units_per_month: int = _Count
    tool_calls_per_day: int = _Count
    outbound_messages_per_day: int = _Count
    # Standing objects (counted by schedules/ when one is created).
    cron_jobs: int = _Count
    heartbeat_tasks: int = _Count

    @classmethod
    def defaults(cls, mode: DeploymentMode) -> Limits:
        """Conservative for saas; generous, but present, for self-hosted."""
        if mode is DeploymentMode.SAAS:
            return cls(
                requests_per_minute_per_key=600, requests_per_minute_per_tenant=1200,
                tool_calls_per_minute=120, tool_calls_per_minute_per_tool=60,
                outbound_per_minute=20, outbound_per_minute_per_channel=10,
                llm_input_tokens_per_month=5_000_000, llm_output_tokens_per_month=1_000_000,
                cost_units_per_month=100_000, tool_calls_per_day=5_000, outbound_messages_per_day=500,
                cron_jobs=20, heartbeat_tasks=10,
            )  # fmt: skip
        return cls(
            requests_per_minute_per_key=6_000, requests_per_minute_per_tenant=12_000,
            tool_calls_per_minute=1_200, tool_calls_per_minute_per_tool=600,
            outbound_per_minute=300, outbound_per_minute_per_channel=120,
            llm_input_tokens_per_month=500_000_000, llm_output_tokens_per_month=100_000_000,
            cost_units_per_month=10_000_000, tool_calls_per_day=200_000, outbound_messages_per_day=20_000,
            cron_jobs=1000, heartbeat_tasks=200,
        )  # fmt: skip

    def merged(self, changes: dict[str, Any]) -> Limits:
        """These limits with ``changes`` applied; unknown names or bad values raise InvalidInput."""
        return validate_limits({**self.model_dump(), **changes})


def validate_limits(values: dict[str, Any]) -> Limits:
    try:
        return Limits.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'limits'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"Invalid limits: {problems}.") from exc


def check_partial(values: dict[str, Any]) -> dict[str, int]:
    """A partial set of limits (a plan or overrides): known names, whole numbers from 0."""
    unknown = sorted(set(values) - set(Limits.model_fields))
    if unknown:
        raise InvalidInput(f"Unknown limits {unknown}; known: {sorted(Limits.model_fields)}.")
    validate_limits({**Limits.defaults(DeploymentMode.SAAS).model_dump(), **values})
    return {k: int(v) for k, v in values.items()}


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """A tenant's effective limits and where they came from."""

    tenant_id: uuid.UUID
    plan: str | None
    overrides: dict[str, int]
    limits: Limits


class PlanStore:
    """Reads and sets plans and tenant overrides. Reads are cached briefly per process.

    A change made here is seen at once in this process and within ``ttl_s`` in others.
    """

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        mode: DeploymentMode,
        ttl_s: float = 5.0,
        defaults: Limits | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self.defaults = defaults or Limits.defaults(mode)
        self._ttl = ttl_s
        self._cache: dict[uuid.UUID, tuple[float, TenantLimits]] = {}

    async def limits(self, ctx: TenantContext) -> TenantLimits:
        """``ctx``'s tenant's effective limits (raises DatabaseUnavailable when the database is down)."""
        hit = self._cache.get(ctx.tenant_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        async with self._db.tenant(ctx) as conn:
            resolved = await self._read(conn, ctx.tenant_id)
        self._cache[ctx.tenant_id] = (now, resolved)
        return resolved

    async def _read(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> TenantLimits:
        row = (
            await conn.execute(
                sa.select(t.tenant_limits.c.plan, t.tenant_limits.c.overrides, t.quota_plans.c.limits)
                .select_from(t.tenant_limits.outerjoin(t.quota_plans, t.quota_plans.c.name == t.tenant_limits.c.plan))
                .where(t.tenant_limits.c.tenant_id == tenant_id)
            )
        ).one_or_none()
        if row is None:
            return TenantLimits(tenant_id, None, {}, self.defaults)
        plan_values = dict(row.limits or {})
        overrides = dict(row.overrides or {})
        return TenantLimits(tenant_id, row.plan, overrides, self.defaults.merged({**plan_values, **overrides}))

    async def tenant_limits_admin(self, tenant_id: uuid.UUID) -> TenantLimits:
        """The platform's view of one tenant's limits (admin role)."""
        async with self._db.admin() as conn:
            await self._require_tenant(conn, tenant_id)
            return await self._read(conn, tenant_id)

    async def set_plan(self, name: str, values: dict[str, Any], *, actor: uuid.UUID | None = None) -> dict[str, int]:
        """Create or replace a plan (a partial set of limits over the mode's defaults)."""
        checked = check_partial(values)
        async with self._db.admin() as conn:
            statement = insert(t.quota_plans).values(name=name, limits=checked)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["name"], set_={"limits": checked, "updated_at": sa.func.now()}
                )
            )
            event = AuditEvent(action="limits.plan_set", payload={"plan": name, "limits": checked})
            await self._audit.append_platform(conn, event, actor=actor)
        self._cache.clear()
        return checked

    async def set_tenant(
        self,
        tenant_id: uuid.UUID,
        *,
        plan: str | None = None,
        overrides: dict[str, Any] | None = None,
        clear: bool = False,
        actor: uuid.UUID | None = None,
    ) -> TenantLimits:
        """Assign a plan and/or merge overrides for a tenant (``clear`` drops earlier overrides)."""
        changes = check_partial(overrides or {})
        async with self._db.admin() as conn:
            await self._require_tenant(conn, tenant_id)
            if plan is not None:
                known = await conn.scalar(sa.select(t.quota_plans.c.name).where(t.quota_plans.c.name == plan))
                if known is None:
                    raise NotFound(f"No plan named {plan!r}: create it first.")
            current = await self._read(conn, tenant_id)
            merged = changes if clear else {**current.overrides, **changes}
            new_plan = plan if plan is not None else current.plan
            statement = insert(t.tenant_limits).values(tenant_id=tenant_id, plan=new_plan, overrides=merged)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id"],
                    set_={"plan": new_plan, "overrides": merged, "updated_at": sa.func.now()},
                )
            )
            payload = {"tenant_id": str(tenant_id), "plan": new_plan, "overrides": merged}
            await self._audit.append_platform(conn, AuditEvent(action="limits.set", payload=payload), actor=actor)
            result = await self._read(conn, tenant_id)
        await self._audit.record_as(tenant_id, AuditEvent(action="limits.set", payload=payload))
        self._cache.pop(tenant_id, None)
        return result

    @staticmethod
    async def _require_tenant(conn: AsyncConnection, tenant_id: uuid.UUID) -> None:
        if await conn.scalar(sa.select(t.tenants.c.id).where(t.tenants.c.id == tenant_id)) is None:
            raise NotFound("No such tenant.")
