"""Observability benchmarks: what metrics and anomaly detection add to the tool-call path.

Run from the repository root::

    .venv/bin/python benchmarks/bench_observe.py           # full run, about 8 minutes on 2 shared cores
    .venv/bin/python benchmarks/bench_observe.py --quick   # short run, to check it works

Starts an embedded PostgreSQL in a temporary directory, removed at exit, or, with
``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL), provisions a fresh database and roles
on that server and drops them afterwards.

Three installations of the same process on the same database, differing only in their
observers of the audit stream: none (``TENANTGATE_METRICS_ENABLED=false``,
``TENANTGATE_ALERTS_ENABLED=false``), metrics only, and metrics with anomaly detection
(the default). Each has its own tenant with the same policy. The same workload runs on each,
call by call in alternating order (``interleave``):

1. ``Boundary.call`` for an allowed ``echo@v1``: the gate, two audit records (each observed),
   the tool.
2. ``Boundary.call`` for ``shell@v1``, which saas never has: a denial every rule counts
   (tenant and principal spikes, the forbidden-tool rule), with thresholds raised so no alert
   fires; the counting is what is measured.
3. ``POST /v1/tools/echo@v1/call`` through the ASGI app in process (no sockets): adds the
   metrics middleware and the request counter.
4. The observers alone, per audit record (a ``gate.decided`` deny, which every denial rule
   counts, and a ``tool.executed``): ``Metrics.observe`` and ``Alerts.observe`` (in-memory
   windows, the tenant's settings cached) against an observer that does nothing. This is the
   CPU each audited event costs, without the database noise of sections 1 to 3.

Every measurement runs one discarded warm-up round, then several rounds, and reports medians
over the rounds. See benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field
from rich.console import Console

# The harness modules sit next to this script (see bench_foundation.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import bench_database, describe, new_tenant, settings_kwargs
from _harness import BenchError, Plan, Round, discarded_logs, header, interleave, repeat, report, rounds_of, start
from tenantgate.api import create_app
from tenantgate.audit import AuditEvent, AuditRecord
from tenantgate.config import Settings
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.gate import ProposedCall, Verdict
from tenantgate.installation import Installation, Services
from tenantgate.tools import Capability, ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool


@dataclass(frozen=True)
class ObservePlan(Plan):
    calls: int  # per round and case, each timed on its own

    records: int = 5_000  # per round and case, for the observers alone


FULL = ObservePlan(rounds=5, calls=150, records=20_000, deadline_s=900)
QUICK = ObservePlan(rounds=3, calls=40, records=2_000, deadline_s=300)

CASES = {
    "no observers": {"metrics_enabled": False, "alerts_enabled": False},
    "metrics": {"metrics_enabled": True, "alerts_enabled": False},
    "metrics + anomaly rules": {"metrics_enabled": True, "alerts_enabled": True},
}
BASE = "no observers"
POLICY = {"packages": [{"package": "bench"}], "grants": [{"id": "all", "tools": ["echo@v1"]}]}
# Counting, not firing: thresholds no benchmark reaches within a window.
QUIET = {"rules": {rule: {"threshold": 1_000_000} for rule in ("denial_spike_tenant", "denial_spike_principal",
                                                                 "forbidden_tool", "budget_burn")}}  # fmt: skip


class EchoArgs(BaseModel):
    text: str = Field(max_length=1000)


@tool("echo@v1", description="Repeat the text.", effect=ToolEffect.READ)
async def echo(call: ToolCall, args: EchoArgs) -> dict[str, str]:
    return {"text": args.text}


class ShellArgs(BaseModel):
    command: str


@tool("shell@v1", description="Run a shell command.", effect=ToolEffect.DESTRUCTIVE, capabilities={Capability.SHELL})
async def shell(call: ToolCall, args: ShellArgs) -> dict[str, str]:
    raise BenchError("saas never runs the shell")


def registry() -> ToolRegistry:
    built = ToolRegistry(Settings.model_fields["mode"].default)
    built.register_available([echo, shell])  # saas leaves the shell out: the gate says capability_denied
    built.add_package(ToolPackage("bench", "Echo.", ("echo@v1",)))
    return built


@dataclass
class Rig:
    services: Services
    ctx: TenantContext
    http: httpx.AsyncClient
    key: str


async def rig(kwargs: dict[str, Any], overrides: dict[str, bool]) -> Rig:
    settings = Settings(_env_file=None, **kwargs, **overrides)  # type: ignore[call-arg]
    services = Services.build(Installation.open(settings, migrate_schema=False), registry=registry())
    await services.db.verify()
    await services.start()
    tenant = await new_tenant(services)
    ctx = TenantContext(tenant_id=tenant.tenant_id, principal_id=tenant.owner_id, kind=PrincipalKind.USER,
                        roles=frozenset({Role.OWNER}), mode=settings.mode, request_id="bench")  # fmt: skip
    await services.policies.set_policy(ctx, POLICY)
    await services.alerts.set_settings(ctx, QUIET)
    app = create_app(services, dispose_on_shutdown=False)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench.test")
    return Rig(services, ctx, http, tenant.key)


async def bench(console: Console, plan: ObservePlan, kwargs: dict[str, Any]) -> None:
    rigs = {name: await rig(kwargs, overrides) for name, overrides in CASES.items()}
    try:
        for r in rigs.values():
            allowed = await r.services.boundary.call(r.ctx, ProposedCall("echo@v1", {"text": "hi"}))
            denied = await r.services.boundary.call(r.ctx, ProposedCall("shell@v1", {"command": "rm -rf /"}))
            if allowed.decision.verdict is not Verdict.ALLOW or denied.decision.code.value != "capability_denied":
                raise BenchError(f"unexpected decisions: {allowed.decision.summary()} {denied.decision.summary()}")

        def allowed_op(r: Rig) -> Callable[[int], Awaitable[object]]:
            return lambda i: r.services.boundary.call(r.ctx, ProposedCall("echo@v1", {"text": f"call {i}"}))

        def denied_op(r: Rig) -> Callable[[int], Awaitable[object]]:
            return lambda i: r.services.boundary.call(r.ctx, ProposedCall("shell@v1", {"command": f"rm -rf /{i}"}))

        async def http_op(r: Rig, i: int) -> None:
            response = await r.http.post("/v1/tools/echo@v1/call", json={"arguments": {"text": f"call {i}"}},
                                         headers={"Authorization": f"Bearer {r.key}"})  # fmt: skip
            if response.status_code != 200:
                raise BenchError(f"HTTP tool call: {response.status_code} {response.text}")

        def http_of(r: Rig) -> Callable[[int], Awaitable[object]]:
            return lambda i: http_op(r, i)

        sections = (
            ("1. Boundary.call, allowed echo@v1 (gate, 2 audit records, tool)", allowed_op),
            ("2. Boundary.call, shell@v1 denied (capability_denied: every denial rule counts)", denied_op),
            ("3. POST /v1/tools/echo@v1/call through the ASGI app (adds the HTTP middleware)", http_of),
        )
        for title, make in sections:
            ops = {name: make(r) for name, r in rigs.items()}

            async def one_round(ops: dict[str, Callable[[int], Awaitable[object]]] = ops) -> dict[str, Any]:
                latencies: dict[str, list[float]] = {}
                await interleave(ops, range(plan.calls), latencies)
                return rounds_of(latencies)

            results = await repeat(one_round, plan.rounds)
            report(console, f"{title}; {plan.calls} calls per round and case", results, baseline=BASE)
        await bench_observers(console, plan, rigs["metrics + anomaly rules"])
    finally:
        for r in rigs.values():
            await r.http.aclose()
            await r.services.audit.drain()
            await r.services.stop()
            await r.services.db.dispose()


async def bench_observers(console: Console, plan: ObservePlan, r: Rig) -> None:
    denied = await r.services.audit.record(
        r.ctx, AuditEvent("gate.decided", decision="deny", code="capability_denied", tool=None,
                          payload={"verdict": "deny", "code": "capability_denied"}),
    )  # fmt: skip
    executed = await r.services.audit.record(
        r.ctx, AuditEvent("tool.executed", decision="succeeded", tool="echo@v1", payload={"duration_ms": 0.5})
    )
    records = [denied, executed]

    async def nothing(record: AuditRecord) -> None:
        return None

    observers: dict[str, Callable[[AuditRecord], Awaitable[None]]] = {
        "no-op observer": nothing,
        "Metrics.observe": r.services.metrics.observe,
        "Alerts.observe": r.services.alerts.observe,
    }

    async def one_round() -> dict[str, Round]:
        latencies: dict[str, list[float]] = {}
        for name, observe in observers.items():
            started = time.perf_counter()
            for i in range(plan.records):
                await observe(records[i % 2])
            latencies[name] = [(time.perf_counter() - started) / plan.records] * plan.records
        return {name: Round(sum(values), values) for name, values in latencies.items()}

    results = await repeat(one_round, plan.rounds)
    report(console, f"4. one audit record through an observer; {plan.records} records per round (a deny, an "
           "execution, alternating)", results, baseline="no-op observer")  # fmt: skip


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    with bench_database() as db, discarded_logs():
        header(console, "tenantgate observability overhead", plan, quick, describe(db))
        asyncio.run(bench(console, plan, settings_kwargs(db)))


if __name__ == "__main__":
    main()
