"""The quota service: tool-call limits (for the gate's hook), request limits, token budgets and usage, over plans."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tenantgate.context import TenantContext
from tenantgate.errors import DatabaseUnavailable, QuotaBackendUnavailable, QuotaExceeded
from tenantgate.quotas._budgets import Budget, Budgets, Reservation
from tenantgate.quotas._plans import Limits, PlanStore
from tenantgate.quotas._prices import ModelPrice, PriceTable
from tenantgate.quotas._rates import Rate, RateLimiter

__all__ = ["Quotas", "TokenReservation"]


@dataclass(slots=True)
class TokenReservation:
    """An LLM call's reservation (input and output tokens, and their cost) and the price it settles at."""

    reservation: Reservation
    price: ModelPrice


class Quotas:
    """Every limit check of a tenant, in one place. Faults of either store fail closed."""

    def __init__(
        self,
        *,
        plans: PlanStore,
        budgets: Budgets,
        rates: RateLimiter,
        auth_failures_per_address: int = 120,
        auth_failures_per_prefix: int = 10,
        prices: PriceTable | None = None,
    ) -> None:
        self.plans = plans
        self.prices = prices or PriceTable({})
        self.budgets = budgets
        self.rates = rates
        self._auth_per_address = auth_failures_per_address
        self._auth_per_prefix = auth_failures_per_prefix

    async def check_auth_allowed(self, address: str, key_prefix: str | None) -> None:
        """Raise QuotaExceeded when this source address or key prefix failed authentication too often."""
        await self.rates.check(Rate.AUTH_FAILURES_PER_ADDRESS, self._auth_per_address, address)
        if key_prefix is not None:
            await self.rates.check(Rate.AUTH_FAILURES_PER_PREFIX, self._auth_per_prefix, key_prefix)

    async def auth_failed(self, address: str, key_prefix: str | None) -> None:
        """Count one failed authentication (never raises QuotaExceeded: the caller is refusing already)."""
        for rate, cap, ident in (
            (Rate.AUTH_FAILURES_PER_ADDRESS, self._auth_per_address, address),
            (Rate.AUTH_FAILURES_PER_PREFIX, self._auth_per_prefix, key_prefix),
        ):
            if ident is not None:
                with contextlib.suppress(QuotaExceeded):
                    await self.rates.hit(rate, cap, ident)

    async def check_tool_call(
        self, ctx: TenantContext, tool: str, *, outbound_channel: str | None = None
    ) -> Reservation:
        """Rate limits, then reserve today's budgets for one call of ``tool``; raise when over.

        ``outbound_channel`` is set for tools that send messages (capability ``messaging.outbound``):
        the call then counts against the outbound-message limits too. A tool call is one unit,
        reserved before execution and kept: the attempt the gate allowed is the call that runs.
        """
        limits = await self._limits(ctx)
        tenant = str(ctx.tenant_id)
        await self.rates.hit(Rate.TOOL_CALLS, limits.tool_calls_per_minute, tenant)
        await self.rates.hit(Rate.TOOL_CALLS_PER_TOOL, limits.tool_calls_per_minute_per_tool, tenant, tool)
        amounts = {Budget.TOOL_CALLS: 1}
        if outbound_channel is not None:
            await self.rates.hit(Rate.OUTBOUND, limits.outbound_per_minute, tenant)
            await self.rates.hit(
                Rate.OUTBOUND_PER_CHANNEL, limits.outbound_per_minute_per_channel, tenant, outbound_channel
            )
            amounts[Budget.OUTBOUND_MESSAGES] = 1
        return await self.budgets.reserve(ctx, limits, amounts)

    def cap(self, name: str) -> Callable[[TenantContext], Awaitable[int]]:
        """The tenant's value of the limit ``name`` (e.g. ``cron_jobs``), for stores that count standing objects."""
        if name not in Limits.model_fields:
            raise ValueError(f"no limit named {name!r}")

        async def read(ctx: TenantContext) -> int:
            value: int = getattr(await self._limits(ctx), name)
            return value

        return read

    async def _limits(self, ctx: TenantContext) -> Limits:
        try:
            return (await self.plans.limits(ctx)).limits
        except DatabaseUnavailable as exc:
            raise QuotaBackendUnavailable(
                "The tenant's limits could not be read; refused.", backend="postgresql", error=type(exc).__name__
            ) from exc

    async def reserve_tokens(
        self,
        ctx: TenantContext,
        *,
        input_tokens: int,
        output_tokens: int,
        provider: str | None = None,
        model: str | None = None,
    ) -> TokenReservation:
        """Reserve an LLM call's maximum tokens and their cost before it is sent, all or nothing.

        The cost is the price table's for ``provider:model`` (an unpriced model pays the default,
        high, price). Settle with the real usage after (``settle_tokens``), also when the call failed.
        """
        limits = await self._limits(ctx)
        price = self.prices.price(provider, model)
        amounts = {
            Budget.LLM_INPUT_TOKENS: input_tokens,
            Budget.LLM_OUTPUT_TOKENS: output_tokens,
            Budget.COST_UNITS: price.cost(input_tokens, output_tokens),
        }
        return TokenReservation(await self.budgets.reserve(ctx, limits, amounts), price)

    async def settle_tokens(self, held: TokenReservation, *, input_tokens: int, output_tokens: int) -> None:
        """Replace the reservation with the real usage, charged at the price it was reserved at."""
        await self.budgets.settle(
            held.reservation,
            {
                Budget.LLM_INPUT_TOKENS: input_tokens,
                Budget.LLM_OUTPUT_TOKENS: output_tokens,
                Budget.COST_UNITS: held.price.cost(input_tokens, output_tokens),
            },
        )

    async def check_request(self, ctx: TenantContext, key_id: str | None) -> None:
        """Count one API request against the tenant's and (when a key made it) the key's rate."""
        limits = await self._limits(ctx)
        tenant = str(ctx.tenant_id)
        await self.rates.hit(Rate.REQUESTS_PER_TENANT, limits.requests_per_minute_per_tenant, tenant)
        if key_id is not None:
            await self.rates.hit(Rate.REQUESTS_PER_KEY, limits.requests_per_minute_per_key, tenant, key_id)

    async def usage(self, ctx: TenantContext) -> dict[str, Any]:
        """The tenant's current usage against its limits: budgets, and tenant-wide rates."""
        resolved = await self.plans.limits(ctx)
        limits = resolved.limits
        tenant = str(ctx.tenant_id)
        budgets = [
            {"limit": u.budget.limit_name, "used": u.used, "max": u.limit,
             "period_start": u.period_start.isoformat(), "resets_at": u.resets_at.isoformat()}
            for u in await self.budgets.usage(ctx, limits)
        ]  # fmt: skip
        rates = []
        for rate in (Rate.REQUESTS_PER_TENANT, Rate.TOOL_CALLS, Rate.OUTBOUND):
            per_minute = getattr(limits, rate.value)
            state = await self.rates.state(rate, per_minute, tenant)
            rates.append({"limit": rate.value, "used": per_minute - state.remaining, "max": per_minute})
        return {
            "tenant_id": tenant,
            "plan": resolved.plan,
            "overrides": resolved.overrides,
            "budgets": budgets,
            "rates": rates,
            "limits": limits.model_dump(),
        }

    async def usage_all(self, tenant_ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        """The platform's view: each tenant's budgets against its limits (admin role)."""
        counters = await self.budgets.usage_all()
        out = []
        for tenant_id in tenant_ids:
            resolved = await self.plans.tenant_limits_admin(tenant_id)
            used = counters.get(tenant_id, {})
            budgets = [{"limit": b.limit_name, "used": used.get(b, 0), "max": b.limit(resolved.limits)} for b in Budget]
            out.append({"tenant_id": str(tenant_id), "plan": resolved.plan, "budgets": budgets})
        return out
