"""Budgets: long windows that must be exact, as durable per-tenant counters in PostgreSQL.

A reservation is one conditional upsert per counter on the (tenant, counter, period) row::

    INSERT ... ON CONFLICT DO UPDATE SET used = used + :n WHERE used + :n <= :limit RETURNING used

PostgreSQL locks the row and re-checks the condition against its latest version, so no
interleaving of concurrent reservations can spend past the limit. Several counters reserve
in one transaction: all of them or none. Settling adjusts by the difference between what was
reserved and what was really used; callers settle in ``finally`` so nothing leaks.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from tenantgate.context import TenantContext
from tenantgate.errors import DatabaseUnavailable, InvalidInput, QuotaBackendUnavailable, QuotaExceeded
from tenantgate.quotas._plans import Limits
from tenantgate.store import Database
from tenantgate.store import tables as t

__all__ = ["Budget", "BudgetUsage", "Budgets", "Reservation", "period_bounds"]


class Budget(StrEnum):
    """A durable counter, and the limit field that caps it."""

    LLM_INPUT_TOKENS = "llm_input_tokens"
    LLM_OUTPUT_TOKENS = "llm_output_tokens"
    COST_UNITS = "cost_units"
    TOOL_CALLS = "tool_calls"
    OUTBOUND_MESSAGES = "outbound_messages"

    @property
    def period(self) -> str:
        return "day" if self in (Budget.TOOL_CALLS, Budget.OUTBOUND_MESSAGES) else "month"

    @property
    def limit_name(self) -> str:
        return f"{self.value}_per_{self.period}"

    def limit(self, limits: Limits) -> int:
        value: int = getattr(limits, self.limit_name)
        return value


def period_bounds(budget: Budget, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The UTC period ``now`` falls in: the start of its day or month, and the next one's."""
    now = now or datetime.now(UTC)
    if budget.period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


@dataclass(slots=True)
class Reservation:
    """What was reserved, in which periods. Settle it exactly once (``Budgets.settle``)."""

    ctx: TenantContext
    amounts: dict[Budget, int]
    periods: dict[Budget, datetime]
    settled: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    budget: Budget
    used: int
    limit: int
    period_start: datetime
    resets_at: datetime


_RESERVE = sa.text(
    """
    INSERT INTO tenantgate.budget_counters AS c (tenant_id, counter, period_start, used)
    VALUES (:tenant, :counter, :period, :n)
    ON CONFLICT (tenant_id, counter, period_start)
    DO UPDATE SET used = c.used + EXCLUDED.used, updated_at = now()
    WHERE c.used + EXCLUDED.used <= :limit
    RETURNING c.used
    """
)
_ADJUST = sa.text(
    """
    UPDATE tenantgate.budget_counters SET used = greatest(used + :delta, 0), updated_at = now()
    WHERE tenant_id = :tenant AND counter = :counter AND period_start = :period
    """
)
_FAULTS = (DatabaseUnavailable, sa_exc.OperationalError, sa_exc.InterfaceError, OSError)


def _unavailable(exc: BaseException) -> QuotaBackendUnavailable:
    return QuotaBackendUnavailable(
        "The budget store (PostgreSQL) cannot be reached; refused rather than counted as allowed.",
        backend="postgresql",
        error=type(exc).__name__,
    )


class Budgets:
    """Reserve-then-settle on durable counters; every fault of the database refuses."""

    def __init__(self, *, db: Database) -> None:
        self._db = db

    async def reserve(self, ctx: TenantContext, limits: Limits, amounts: Mapping[Budget, int]) -> Reservation:
        """Reserve every amount or none; raise QuotaExceeded naming the limit and when it resets."""
        wanted = {b: int(n) for b, n in amounts.items() if int(n) != 0}
        if any(n < 0 for n in wanted.values()):
            raise InvalidInput("A reservation is for zero or more units.")
        now = datetime.now(UTC)
        periods: dict[Budget, datetime] = {}
        try:
            async with self._db.tenant(ctx) as conn:
                for budget, n in wanted.items():
                    start, end = period_bounds(budget, now)
                    periods[budget] = start
                    cap = budget.limit(limits)
                    used = None
                    if n <= cap:
                        params = {"tenant": ctx.tenant_id, "counter": budget.value, "period": start}
                        result = await conn.execute(_RESERVE, {**params, "n": n, "limit": cap})
                        used = result.scalar_one_or_none()
                    if used is None:
                        # Raising rolls back the counters reserved before this one in the same transaction.
                        raise _exceeded(budget, cap, end, now)
        except QuotaExceeded:
            raise
        except _FAULTS as exc:
            raise _unavailable(exc) from exc
        return Reservation(ctx, wanted, periods)

    async def settle(self, reservation: Reservation, actual: Mapping[Budget, int] | None = None) -> None:
        """Replace what was reserved with what was used (nothing, when ``actual`` is None)."""
        if reservation.settled:
            return
        reservation.settled = True
        actual = actual or {}
        deltas = {b: int(actual.get(b, 0)) - n for b, n in reservation.amounts.items()}
        deltas.update({b: int(n) for b, n in actual.items() if b not in reservation.amounts and int(n) > 0})
        deltas = {b: d for b, d in deltas.items() if d != 0}
        if not deltas:
            return
        ctx = reservation.ctx
        try:
            async with self._db.tenant(ctx) as conn:
                for budget, delta in deltas.items():
                    period = reservation.periods.get(budget) or period_bounds(budget)[0]
                    params = {"tenant": ctx.tenant_id, "counter": budget.value, "period": period, "delta": delta}
                    if delta > 0 and budget not in reservation.periods:
                        # Used without a reservation (should not happen): count it all the same.
                        await conn.execute(_RESERVE, {**params, "n": delta, "limit": 2**62})
                    else:
                        await conn.execute(_ADJUST, params)
        except _FAULTS as exc:
            raise _unavailable(exc) from exc

    async def usage_all(self) -> dict[uuid.UUID, dict[Budget, int]]:
        """Every tenant's budget counters in their current periods (admin role: the platform's view)."""
        now = datetime.now(UTC)
        current = {b: period_bounds(b, now)[0] for b in Budget}
        c = t.budget_counters.c
        try:
            async with self._db.admin() as conn:
                rows = (
                    await conn.execute(
                        sa.select(c.tenant_id, c.counter, c.period_start, c.used).where(
                            c.period_start >= current[Budget.COST_UNITS]
                        )
                    )
                ).all()
        except _FAULTS as exc:
            raise _unavailable(exc) from exc
        out: dict[uuid.UUID, dict[Budget, int]] = {}
        for row in rows:
            budget = Budget(row.counter)
            if current[budget] == row.period_start:
                out.setdefault(row.tenant_id, {})[budget] = int(row.used)
        return out

    async def usage(self, ctx: TenantContext, limits: Limits) -> list[BudgetUsage]:
        """Every budget of ``ctx``'s tenant in its current period."""
        now = datetime.now(UTC)
        c = t.budget_counters.c
        try:
            async with self._db.tenant(ctx) as conn:
                rows = (
                    await conn.execute(
                        sa.select(c.counter, c.period_start, c.used)
                        .where(c.tenant_id == ctx.tenant_id)
                        .where(c.period_start >= period_bounds(Budget.COST_UNITS, now)[0])
                    )
                ).all()
        except _FAULTS as exc:
            raise _unavailable(exc) from exc
        used = {(r.counter, r.period_start): int(r.used) for r in rows}
        out = []
        for budget in Budget:
            start, end = period_bounds(budget, now)
            out.append(BudgetUsage(budget, used.get((budget.value, start), 0), budget.limit(limits), start, end))
        return out


def _exceeded(budget: Budget, cap: int, resets_at: datetime, now: datetime) -> QuotaExceeded:
    retry = max(1, int((resets_at - now).total_seconds()) + 1)
    return QuotaExceeded(
        f"The {budget.limit_name} budget ({cap}) is spent; it resets at {resets_at.isoformat()}.",
        limit=budget.limit_name,
        limit_value=cap,
        reset_at=resets_at.isoformat(),
        retry_after=retry,
    )
