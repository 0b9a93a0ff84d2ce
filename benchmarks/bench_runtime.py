"""Agent runtime benchmark: the per-turn overhead of the runtime over HTTP.

Run from the repository root::

    .venv/bin/python benchmarks/bench_runtime.py           # full run, a few minutes
    .venv/bin/python benchmarks/bench_runtime.py --quick   # short run, to check it works

One uvicorn worker serves the tenantgate API on an embedded PostgreSQL (or, with
``TENANTGATE_BENCH_DATABASE_URL``, a fresh database on that server). A tenant's policy picks
the scripted planner with a script of three steps, each one call of a trivial ``echo@v1`` tool,
then a reply. One *turn* is ``POST /v1/sessions/{id}/messages``: the run row, the user message,
four planner steps, three schema checks, three gate decisions and executions through the
boundary (each audited), every run event persisted, the reply and ``run.finished``.

The baseline, in the same run and on the same server: the same three tool calls made
directly, one after another, over ``POST /v1/tools/echo@v1/call``. The difference is what the
runtime adds per turn. Every measurement runs one discarded warm-up round, then several
rounds, and reports medians over the rounds; the cases run as blocks whose order flips
every round. See benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import uvloop
from rich.console import Console

# The harness modules sit next to this script (see bench_foundation.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import Case, Plan, Stats, compare, discarded_logs, header, report, run_concurrently, start
from _serve import echo_app, echo_registry, raw_driver, served
from tenantgate.auth import system_context
from tenantgate.gate import PolicyStore

TOOL_CALLS = 3


@dataclass(frozen=True)
class RuntimePlan(Plan):
    turns: int  # per round and case (a baseline op is three tool calls)
    connections: int = 8


FULL = RuntimePlan(rounds=7, turns=150, deadline_s=600)
QUICK = RuntimePlan(rounds=5, turns=60, deadline_s=240)


POLICY = {
    "packages": [{"package": "basics"}],
    "grants": [{"id": "echo", "tools": ["echo@v1"]}],
    "ai": {"planner": {"provider": "scripted", "script": [
        *({"calls": [{"tool": "echo@v1", "arguments": {"text": f"step {n}"}}]} for n in range(TOOL_CALLS)),
        {"reply": "Echoed three times."},
    ]}},
}  # fmt: skip


async def install_tenant(settings: dict[str, Any]) -> tuple[str, str]:
    """A tenant whose planner is the three-call script, and one session; the owner's key and the session id."""
    async with running_services(settings) as services:
        tenant = await new_tenant(services)
        store = PolicyStore(db=services.db, registry=echo_registry(), audit=services.audit)
        system = system_context(tenant.tenant_id, mode=services.settings.mode, request_id="bench")
        await store.set_policy(system, POLICY)
        owner = await services.authenticator.authenticate(f"Bearer {tenant.key}", request_id="bench")
        created = await services.runtime.sessions.create(owner, title="bench")
        return tenant.key, str(created.id)


async def bench(settings: dict[str, Any], key: str, session: str, plan: RuntimePlan) -> dict[str, Stats]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    call = json.dumps({"arguments": {"text": "step"}}).encode()
    turn = json.dumps({"content": "Echo three times."}).encode()
    with served(echo_app, {"settings": settings}, plan.deadline_s) as url:
        async with contextlib.AsyncExitStack() as clients:
            direct = await clients.enter_async_context(
                raw_driver(url, "/v1/tools/echo@v1/call", headers, plan.connections, method="POST", body=call)
            )
            agent = await clients.enter_async_context(
                raw_driver(url, f"/v1/sessions/{session}/messages", headers, plan.connections, method="POST",
                           body=turn)
            )  # fmt: skip

            async def three_calls() -> None:
                for _ in range(TOOL_CALLS):
                    await direct()

            cases: dict[str, Case] = {
                "3 direct tool calls (POST /v1/tools/echo@v1/call x3)": partial(
                    run_concurrently, three_calls, plan.turns, plan.connections
                ),
                "agent turn, scripted planner, 3 tool calls": partial(
                    run_concurrently, agent, plan.turns, plan.connections
                ),
            }
            return await compare(cases, plan.rounds)


async def run_all(db: BenchDatabase, plan: RuntimePlan, console: Console) -> None:
    settings = settings_kwargs(db)
    key, session = await install_tenant(settings)
    results = await bench(settings, key, session, plan)
    base = "3 direct tool calls (POST /v1/tools/echo@v1/call x3)"
    report(console, f"Turns over HTTP: 1 uvicorn worker, {plan.connections} keep-alive connections, "
                    f"{plan.turns} turns (or baseline triples) per round", results, baseline=base)  # fmt: skip
    agent = results["agent turn, scripted planner, 3 tool calls"]
    console.print(
        f"  runtime overhead per turn (p50): {(agent.p50 - results[base].p50) * 1e3:.2f} ms over the three direct "
        f"calls; turns/s {agent.rate:,.0f}, p99 {agent.p99 * 1e3:.1f} ms"
    )


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate agent runtime benchmark", plan, quick, describe(db),
               f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")  # fmt: skip
        uvloop.run(run_all(db, plan, console))
    console.print(
        f"[dim]done in {time.monotonic() - started:.0f}s, load average (1 min) {os.getloadavg()[0]:.2f}[/dim]"
    )


if __name__ == "__main__":
    main()
