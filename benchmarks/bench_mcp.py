"""MCP benchmark: ``tools/call`` over the MCP endpoint vs the HTTP API's tool call, same server, same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_mcp.py           # full run, a few minutes
    .venv/bin/python benchmarks/bench_mcp.py --quick   # short run, to check it works

One uvicorn worker serves the tenantgate API on an embedded PostgreSQL (or, with
``TENANTGATE_BENCH_DATABASE_URL``, a fresh database on that server). A tenant's policy grants a
trivial ``echo@v1`` tool. The baseline is ``POST /v1/tools/echo@v1/call``; the case is the same
call as an MCP ``tools/call`` request (JSON-RPC over streamable HTTP, stateless, JSON responses)
to ``POST /mcp``, made by a minimal HTTP client, so the difference is what the MCP layer (the
SDK's transport and dispatch, and our result mapping) adds on the server. Both authenticate the
same key, go through the same gate, execution and audit. Every measurement runs one discarded
warm-up round, then several rounds, and reports medians over the rounds; the cases run as blocks
whose order flips every round. See benchmarks/README.md.
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

import httpx
import uvloop
from rich.console import Console

# The harness modules sit next to this script (see bench_foundation.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import BenchError, Case, Plan, Stats, compare, discarded_logs, header, report, run_concurrently, start
from _serve import echo_app, echo_registry, raw_driver, served
from tenantgate.auth import system_context
from tenantgate.gate import PolicyStore

BASE = "HTTP API: POST /v1/tools/echo@v1/call"
MCP = "MCP: tools/call echo__v1 (POST /mcp)"


@dataclass(frozen=True)
class McpPlan(Plan):
    calls: int  # per round and case
    connections: int = 8


FULL = McpPlan(rounds=7, calls=1500, deadline_s=600)
QUICK = McpPlan(rounds=5, calls=300, deadline_s=240)


POLICY = {"packages": [{"package": "basics"}], "grants": [{"id": "echo", "tools": ["echo@v1"]}]}
MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo__v1", "arguments": {"text": "step"}}}  # fmt: skip


async def install_tenant(settings: dict[str, Any]) -> str:
    """A tenant allowed to call ``echo@v1``; the owner's key."""
    async with running_services(settings) as services:
        tenant = await new_tenant(services)
        store = PolicyStore(db=services.db, registry=echo_registry(), audit=services.audit)
        system = system_context(tenant.tenant_id, mode=services.settings.mode, request_id="bench")
        await store.set_policy(system, POLICY)
        return tenant.key


async def check(url: str, headers: dict[str, str]) -> None:
    """Both doors answer the call correctly before anything is timed (a 200 can still be a refusal)."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        direct = await client.post("/v1/tools/echo@v1/call", json={"arguments": {"text": "step"}})
        via_mcp = await client.post("/mcp", json=MCP_CALL, headers=MCP_HEADERS)
    if direct.status_code != 200 or direct.json()["output"] != {"text": "step"}:
        raise BenchError(f"HTTP tool call: {direct.status_code} {direct.text[:200]}")
    result = via_mcp.json().get("result", {}) if via_mcp.status_code == 200 else {}
    if result.get("isError") is not False or result["structuredContent"]["output"] != {"text": "step"}:
        raise BenchError(f"MCP tools/call: {via_mcp.status_code} {via_mcp.text[:300]}")


async def bench(settings: dict[str, Any], key: str, plan: McpPlan) -> dict[str, Stats]:
    auth = {"Authorization": f"Bearer {key}"}
    call = json.dumps({"arguments": {"text": "step"}}).encode()
    with served(echo_app, {"settings": settings}, plan.deadline_s) as url:
        await check(url, auth)
        async with contextlib.AsyncExitStack() as clients:
            direct = await clients.enter_async_context(
                raw_driver(url, "/v1/tools/echo@v1/call", {**auth, "Content-Type": "application/json"},
                           plan.connections, method="POST", body=call)
            )  # fmt: skip
            via_mcp = await clients.enter_async_context(
                raw_driver(url, "/mcp", {**auth, **MCP_HEADERS}, plan.connections, method="POST",
                           body=json.dumps(MCP_CALL).encode())
            )  # fmt: skip
            cases: dict[str, Case] = {
                BASE: partial(run_concurrently, direct, plan.calls, plan.connections),
                MCP: partial(run_concurrently, via_mcp, plan.calls, plan.connections),
            }
            return await compare(cases, plan.rounds)


async def run_all(db: BenchDatabase, plan: McpPlan, console: Console) -> None:
    settings = settings_kwargs(db)
    key = await install_tenant(settings)
    results = await bench(settings, key, plan)
    report(console, f"Tool calls over HTTP: 1 uvicorn worker, {plan.connections} keep-alive connections, "
                    f"{plan.calls} calls per round and case", results, baseline=BASE)  # fmt: skip
    base, mcp = results[BASE], results[MCP]
    console.print(
        f"  MCP overhead per call (p50): {(mcp.p50 - base.p50) * 1e3:.2f} ms; "
        f"MCP calls/s {mcp.rate:,.0f} = {mcp.rate / base.rate:.2f}x the HTTP API's {base.rate:,.0f}"
    )


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate MCP benchmark", plan, quick, describe(db),
               f"load average (1 min) at start: {os.getloadavg()[0]:.2f}")  # fmt: skip
        uvloop.run(run_all(db, plan, console))
    console.print(
        f"[dim]done in {time.monotonic() - started:.0f}s, load average (1 min) {os.getloadavg()[0]:.2f}[/dim]"
    )


if __name__ == "__main__":
    main()
