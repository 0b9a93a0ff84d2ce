"""Egress benchmark: what the egress door adds to one outbound request, against plain httpx.

Run from the repository root::

    .venv/bin/python benchmarks/bench_egress.py           # full run, about a minute
    .venv/bin/python benchmarks/bench_egress.py --quick   # a few seconds, to check it works

A bare FastAPI app (``GET /noop``) runs in a uvicorn child process on 127.0.0.1. Nothing is
dialled anywhere else: the door's resolver is a table that maps the benchmark's host name
to 127.0.0.1, and the policy allows exactly that address and port. No database is needed
(only refusals are audited, and this measures allowed requests).

1. Per request, sequentially, the cases interleaved call by call (A/B, so drift and noise
   hit them alike): plain httpx with a new connection each request (the base: the door
   never reuses connections, see ``SafeTransport``), plain httpx with keep-alive (for
   scale), ``safe_client`` (the platform policy), and ``EgressHttp`` as tools use it (a
   client per call, the tenant's domain lists awaited on its first request).
2. The checks alone, in memory: ``EgressPolicy.check_target`` + the tenant's
   ``DomainLists.check`` + ``check_address`` for one URL.

Medians over rounds; ratios to the base of the same run. See benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BenchError,
    Plan,
    Round,
    discarded_logs,
    header,
    interleave,
    repeat,
    report,
    rounds_of,
    start,
    sync_case,
    time_each,
)
from _serve import bare_app, served
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.egress import DomainLists, EgressHttp, EgressPolicy, IPAddress, check_address, safe_client

HOST = "api.bench.test"


@dataclass(frozen=True)
class EgressPlan(Plan):
    requests: int  # per case per round
    checks: int  # in-memory checks per round


FULL = EgressPlan(rounds=7, deadline_s=300, requests=300, checks=20_000)
QUICK = EgressPlan(rounds=2, deadline_s=120, requests=40, checks=2_000)


class Table:
    """The benchmark's resolver: one name, one loopback address, no DNS."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        if host != HOST:
            raise OSError(f"no such host {host}")
        return [ip_address("127.0.0.1")]


async def run_all(base: str, plan: EgressPlan, console: object) -> None:
    port = httpx.URL(base).port
    assert port is not None
    url = f"http://{HOST}:{port}/noop"
    direct = f"http://127.0.0.1:{port}/noop"
    policy = EgressPolicy(
        allowed_ports=frozenset({port}), allowed_private=frozenset({ip_network("127.0.0.1/32")}), timeout_s=10
    )
    lists = DomainLists(allow=frozenset({"*.bench.test"}), deny=frozenset({"evil.example.com", "*.internal.corp"}))

    async def tenant_lists(ctx: TenantContext) -> DomainLists:
        return lists

    source = EgressHttp(policy, lists=tenant_lists, resolver=Table())
    ctx = system_context(uuid.uuid4(), mode=DeploymentMode.SAAS, request_id="bench")
    fresh = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)), trust_env=False
    )
    pooled = httpx.AsyncClient(trust_env=False)
    door = safe_client(policy, resolver=Table())

    async def expect_ok(response: httpx.Response) -> None:
        if response.status_code != 200 or response.json() != {}:
            raise BenchError(f"unexpected answer {response.status_code}: {response.text[:200]}")

    async def plain_fresh(_: int) -> None:
        await expect_ok(await fresh.get(direct))

    async def plain_keepalive(_: int) -> None:
        await expect_ok(await pooled.get(direct))

    async def through_safe_client(_: int) -> None:
        await expect_ok(await door.get(url))

    async def through_tool_source(_: int) -> None:
        async with source.client(ctx, tool="web_fetch@v1", call_id=uuid.uuid4()) as client:
            await expect_ok(await client.get(url))

    ops = {
        "httpx, new connection each request": plain_fresh,
        "httpx, keep-alive": plain_keepalive,
        "safe_client (platform policy)": through_safe_client,
        "EgressHttp per tool call (+ tenant lists)": through_tool_source,
    }

    async def one_round() -> dict[str, Round]:
        latencies: dict[str, list[float]] = {}
        await interleave(ops, range(plan.requests), latencies)
        return rounds_of(latencies)

    try:
        results = await repeat(one_round, plan.rounds)
    finally:
        await fresh.aclose()
        await pooled.aclose()
        await door.aclose()
    report(console, "1. One GET over loopback, sequential", results, "httpx, new connection each request")  # type: ignore[arg-type]

    target = httpx.URL(url)
    loopback = ip_address("127.0.0.1")

    def checks() -> Round:
        def one(_: int) -> None:
            checked, _port = policy.check_target(target.scheme, target.host, target.port)
            lists.check(str(checked))
            check_address(loopback, allowed_private=policy.allowed_private)

        return Round.sequential(time_each(one, range(plan.checks)))

    def nothing() -> Round:
        return Round.sequential(time_each(lambda _: None, range(plan.checks)))

    async def check_round() -> dict[str, Round]:
        return {"an empty call (floor)": await sync_case(nothing)(), "the checks of one URL": await sync_case(checks)()}

    report(console, "2. The checks alone, in memory", await repeat(check_round, plan.rounds), "an empty call (floor)")  # type: ignore[arg-type]


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    header(console, "tenantgate egress benchmark", plan, quick, f"{plan.requests} requests per case per round")
    with discarded_logs(), served(bare_app, {}, lifetime_s=plan.deadline_s) as base:
        asyncio.run(run_all(base, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")


if __name__ == "__main__":
    main()
