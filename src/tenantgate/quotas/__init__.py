"""Quotas: rate limits with the ``limits`` library (memory by default, Redis when configured);
budgets as durable counters in PostgreSQL; plans as data. Control-plane faults fail closed."""

from tenantgate.quotas._budgets import Budget, Budgets, BudgetUsage, Reservation, period_bounds
from tenantgate.quotas._plans import Limits, PlanStore, TenantLimits
from tenantgate.quotas._prices import DEFAULT_PRICE, ModelPrice, PriceTable
from tenantgate.quotas._rates import Rate, RateLimiter, RateState
from tenantgate.quotas._service import Quotas, TokenReservation
from tenantgate.quotas._storage import limits_storage

__all__ = [
    "DEFAULT_PRICE",
    "Budget",
    "BudgetUsage",
    "Budgets",
    "Limits",
    "ModelPrice",
    "PlanStore",
    "PriceTable",
    "Quotas",
    "Rate",
    "RateLimiter",
    "RateState",
    "Reservation",
    "TenantLimits",
    "TokenReservation",
    "limits_storage",
    "period_bounds",
]
