"""Quotas benchmark: rate-limit checks in memory and on Redis, the gate with and without its quota hook,
and budget reserve+settle on PostgreSQL under 16 concurrent workers.

Run from the repository root::

    .venv/bin/python benchmarks/bench_quotas.py           # full run
    .venv/bin/python benchmarks/bench_quotas.py --quick   # short run, to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at exit;
with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and roles are
provisioned on that server instead. Redis: ``TENANTGATE_BENCH_REDIS_URL``, else
``redis://127.0.0.1:6379/0`` if it answers; without Redis its rows are left out and said so.

Tables (each with a baseline measured in the same run, medians over rounds and ratios):

1. **limit checks**: one moving-window hit, in memory and on Redis (base: in memory);
2. **gate decision**: ``Gate.decide`` for an allowed call with no quota hook (base) and with
   the hook (rate limits in memory, then the day's tool-call budget reserved in PostgreSQL);
3. **budgets, 16 workers**: reserve then settle on one tenant's counters, next to an empty
   tenant transaction (base) on the same pool.

See benchmarks/README.md.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
import sqlalchemy as sa
import uvloop
from pydantic import BaseModel
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import Case, Plan, Stats, compare, discarded_logs, header, report, run_concurrently, start, verdict
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.gate import Gate, PolicyStore, ProposedCall, Switches, TenantView, quota_hook
from tenantgate.installation import Services
from tenantgate.quotas import Budget, Budgets, PlanStore, Quotas, Rate, RateLimiter
from tenantgate.tools import ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool

WORKERS = 16
BIG = 10**12  # limits no benchmark reaches: the cost is measured, not the refusal


@dataclass(frozen=True)
class QuotaPlan(Plan):
    checks: int  # limit checks per case and round
    decisions: int  # gate decisions per case and round
    budget_calls: int  # reserve+settle pairs per round, over WORKERS tasks


FULL = QuotaPlan(rounds=7, checks=4000, decisions=1500, budget_calls=2000, deadline_s=600)
QUICK = QuotaPlan(rounds=3, checks=500, decisions=200, budget_calls=300, deadline_s=240)


class EchoArgs(BaseModel):
    text: str


@tool("echo@v1", description="Repeat the text.", effect=ToolEffect.READ)
async def echo(call: ToolCall, args: EchoArgs) -> dict[str, str]:
    return {"text": args.text}


def registry(services: Services) -> ToolRegistry:
    built = ToolRegistry(services.settings.mode)
    built.register_available([echo])
    built.add_package(ToolPackage("basics", "Echo.", ("echo@v1",)))
    return built


@dataclass(frozen=True)
class Loaded:
    """A PolicySource over one loaded view: what a warm policy cache answers."""

    loaded_view: TenantView
    switches: Switches

    async def view(self, ctx: TenantContext) -> TenantView:
        return self.loaded_view

    async def platform(self) -> Switches:
        return self.switches


def redis_url() -> str | None:
    url = os.environ.get("TENANTGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return None
    return url


async def limit_checks(plan: QuotaPlan, url: str | None) -> dict[str, Case]:
    limiters = {"memory": RateLimiter()}
    if url is not None:
        limiters["redis"] = RateLimiter(url)
    cases: dict[str, Case] = {}
    for name, limiter in limiters.items():
        key = str(uuid.uuid4())

        async def hit(limiter: RateLimiter = limiter, key: str = key) -> None:
            await limiter.hit(Rate.TOOL_CALLS, 10**9, key)

        cases[f"hit, {name}"] = functools.partial(run_concurrently, hit, plan.checks)
    return cases


async def run_all(db: BenchDatabase, plan: QuotaPlan, console: Console) -> bool:
    ok = True
    url = redis_url()
    results: dict[str, Stats] = await compare(await limit_checks(plan, url), plan.rounds)
    report(console, "1. limit checks (one moving-window hit, 1 task)", results, baseline="hit, memory")
    if url is None:
        console.print("  [yellow]no Redis answered (TENANTGATE_BENCH_REDIS_URL or 127.0.0.1:6379): its row is left out")

    async with running_services(settings_kwargs(db)) as services:
        tenant = await new_tenant(services)
        ctx = system_context(tenant.tenant_id, mode=services.settings.mode, request_id="bench")
        reg = registry(services)
        policies = PolicyStore(db=services.db, registry=reg, audit=services.audit)
        await policies.set_policy(
            ctx,
            {"packages": [{"package": "basics"}], "grants": [{"id": "e", "tools": ["echo@v1"]}]},
        )
        quotas = Quotas(
            plans=PlanStore(db=services.db, audit=services.audit, mode=services.settings.mode),
            budgets=Budgets(db=services.db),
            rates=RateLimiter(),
        )
        lifted = ("tool_calls_per_day", "tool_calls_per_minute", "tool_calls_per_minute_per_tool",
                  "llm_input_tokens_per_month", "llm_output_tokens_per_month")  # fmt: skip
        await quotas.plans.set_tenant(tenant.tenant_id, overrides=dict.fromkeys(lifted, BIG))
        owner = await services.authenticator.authenticate(f"Bearer {tenant.key}", request_id="bench")
        # As the policy cache holds it between changes: loaded once, decided from memory.
        loaded = Loaded(await policies.load_view(ctx), await policies.load_platform())
        bare = Gate(registry=reg, policies=loaded)
        hooked = Gate(registry=reg, policies=loaded, quota=quota_hook(quotas.check_tool_call))
        call = ProposedCall("echo@v1", {"text": "hi"})
        for gate in (bare, hooked):
            decision = await gate.decide(owner, call)
            if not decision.allowed:
                raise RuntimeError(f"the benchmark's call is not allowed: {decision.reason}")

        async def decide(gate: Gate) -> None:
            await gate.decide(owner, call)

        gate_cases: dict[str, Case] = {
            "decide, no quota hook": functools.partial(
                run_concurrently, functools.partial(decide, bare), plan.decisions
            ),
            "decide, quota hook": functools.partial(
                run_concurrently, functools.partial(decide, hooked), plan.decisions
            ),
        }
        results = await compare(gate_cases, plan.rounds)
        report(console, "2. gate decision latency (1 task; the policy as the cache holds it)", results,
               baseline="decide, no quota hook")  # fmt: skip
        added = results["decide, quota hook"].p50 - results["decide, no quota hook"].p50
        ok &= added < 0.005
        verdict(console, f"the quota hook adds {added * 1e3:.2f} ms at the median (target < 5 ms)", added < 0.005)

        pairs = [0]

        async def reserve_settle() -> None:
            held = await quotas.reserve_tokens(ctx, input_tokens=1000, output_tokens=500)
            await quotas.settle_tokens(held, input_tokens=700, output_tokens=120)
            pairs[0] += 1

        async def empty_transaction() -> None:
            async with services.db.tenant(ctx) as conn:
                await conn.execute(sa.text("SELECT 1"))

        budget_cases: dict[str, Case] = {
            "tenant transaction (SELECT 1)": functools.partial(run_concurrently, empty_transaction, plan.budget_calls,
                                                               WORKERS),
            "reserve + settle": functools.partial(run_concurrently, reserve_settle, plan.budget_calls, WORKERS),
        }  # fmt: skip
        results = await compare(budget_cases, plan.rounds)
        report(console, f"3. budgets on PostgreSQL, {WORKERS} concurrent workers, one tenant's counters", results,
               baseline="tenant transaction (SELECT 1)")  # fmt: skip
        spent = {u.budget: u.used for u in await quotas.budgets.usage(ctx, (await quotas.plans.limits(ctx)).limits)}
        used = spent[Budget.LLM_OUTPUT_TOKENS]
        calls = pairs[0]  # warm-up included
        # Cost units settle with the tokens: 700 in, 120 out at the default price (15, 75 a 1k) is 20 a pair.
        exact = used == 120 * calls and spent[Budget.COST_UNITS] == 20 * calls
        ok &= exact
        verdict(console, f"after {calls:,} concurrent reserve+settle pairs the counters hold exactly 120 x {calls:,} "
                         f"output tokens and 20 x {calls:,} cost units",
                exact)  # fmt: skip
        await services.audit.drain()
    return ok


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate quotas benchmark", plan, quick, describe(db))
        ok = uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
