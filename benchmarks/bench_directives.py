"""Directives and webhooks benchmark: webhook ingest req/s, and directives/s through one worker.

Run from the repository root::

    .venv/bin/python benchmarks/bench_directives.py           # full run
    .venv/bin/python benchmarks/bench_directives.py --quick   # short run, to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit; with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and roles
are provisioned on that server instead, and dropped afterwards.

Two tables, each with a baseline measured in the same rounds:

1. **webhook ingest** (in-process, ``WebhookIngest.receive``): a Standard Webhooks delivery
   routed, its secret opened from the vault, verified over the raw bytes, recorded as a
   signal and its processing deferred on the job queue; base: the bare signal insert.
2. **directives**: a tool with an external effect that POSTs to an instant fake provider on
   127.0.0.1 through the egress door; base: the executor alone (no directive). Then the
   same call as an inline directive (record, claim, run, finish: four transactions), and
   through the queue: ``calls`` directives recorded and deferred, run by one in-process
   worker (``DirectiveQueue.serve``), timed until the last is finished (throughput only:
   its p50/p99 are the round's mean).

See benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvloop
from pydantic import BaseModel
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, settings_kwargs
from _harness import Plan, Round, Stats, discarded_logs, header, repeat, report, start, verdict
from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import TenantContext
from tenantgate.demo import FakeServer, Reply, Request
from tenantgate.directives import WorkerTiming
from tenantgate.egress import EgressPolicy
from tenantgate.gate import DirectiveRunner
from tenantgate.installation import Installation, Outside, Services, build_registry
from tenantgate.tools import Capability, Executor, ToolCall, ToolEffect, ToolResources, tool
from tenantgate.webhooks import sign_standard

SECRET = "whsec_YmVuY2htYXJrLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXM="


@dataclass(frozen=True)
class DirectivePlan(Plan):
    calls: int  # per case and round


FULL = DirectivePlan(rounds=7, calls=200, deadline_s=600)
QUICK = DirectivePlan(rounds=5, calls=40, deadline_s=240)


class SendArgs(BaseModel):
    url: str
    n: int


@tool("bench_send@v1", description="POST to the fake provider.", effect=ToolEffect.EXTERNAL,
      capabilities={Capability.NET_EGRESS})  # fmt: skip
async def bench_send(call: ToolCall, args: SendArgs) -> dict[str, Any]:
    response = await call.http().post(args.url, json={"n": args.n}, headers={"Idempotency-Key": call.idempotency_key})
    body: dict[str, Any] = response.json()
    return body


async def instant(request: Request) -> Reply:
    return Reply(200, {"id": request.headers.get("idempotency-key"), "ok": True})


def build(db: BenchDatabase, port: int, *, queue: bool) -> Services:
    kwargs = settings_kwargs(db)
    if queue:
        kwargs["directives"] = "queue"
    settings = Settings(_env_file=None, **kwargs)  # type: ignore[call-arg]
    registry = build_registry(settings)
    registry.register_available([bench_send])
    policy = EgressPolicy(allowed_ports=frozenset({port}), allowed_private=frozenset({ip_network("127.0.0.1/32")}))
    return Services.build(Installation.open(settings, migrate_schema=False), registry=registry,
                          outside=Outside(policy=policy))  # fmt: skip


async def timed(op: Any, calls: int) -> Round:
    latencies = []
    for i in range(calls):
        t0 = time.perf_counter()
        await op(i)
        latencies.append(time.perf_counter() - t0)
    return Round.sequential(latencies)


async def ingest_cases(services: Services, ctx: TenantContext, plan: DirectivePlan) -> dict[str, Stats]:
    endpoint = await services.webhooks.endpoints.create(ctx, provider="standard", secret=SECRET)
    body = b'{"type":"invoice.paid","timestamp":"2026-11-30T12:00:00Z","data":{"id":"inv_1"}}'

    async def bare(i: int) -> object:
        return await services.signals.store.record(
            ctx, type="webhook.received@v1", source="bench", dedupe_key=f"bare:{uuid.uuid4()}",
            payload={"event_type": "invoice.paid", "data": {"id": "inv_1"}}, occurred_at=datetime.now(UTC),
        )  # fmt: skip

    async def ingest(i: int) -> object:
        msg_id, now = f"msg_{uuid.uuid4().hex}", int(time.time())
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(now),
                   "webhook-signature": sign_standard(SECRET, msg_id, now, body)}  # fmt: skip
        return await services.webhooks.receive("standard", endpoint.id, headers, body)

    async def one_round() -> dict[str, Round]:
        return {
            "signal insert": await timed(bare, plan.calls),
            "webhook ingest: route + secret + verify + signal + enqueue": await timed(ingest, plan.calls),
        }

    return await repeat(one_round, plan.rounds)


async def directive_cases(
    inline: Services, queued: Services, ctx: TenantContext, url: str, plan: DirectivePlan
) -> dict[str, Stats]:
    executor = Executor(registry=inline.registry, resources=ToolResources(http=inline.http), redactor=inline.redactor)
    runner = DirectiveRunner(store=inline.directives.store, executor=executor, registry=inline.registry,
                             mode=inline.settings.mode)  # fmt: skip
    assert queued.queue is not None
    worker = asyncio.create_task(
        queued.queue.serve(
            queued.directives.execute, signals=queued.signals.process, concurrency=4, timing=WorkerTiming(poll_s=0.5)
        )
    )

    async def bare(i: int) -> object:
        return await executor.run(ctx, "bench_send@v1", {"url": url, "n": i}, call_id=uuid.uuid4())

    async def directive(i: int) -> object:
        return await runner.submit(ctx, "bench_send@v1", {"url": url, "n": i}, args_digest=str(i),
                                   call_id=uuid.uuid4(), run_id=None)  # fmt: skip

    async def through_worker() -> Round:
        store = queued.directives.store
        ids = []
        t0 = time.perf_counter()
        for i in range(plan.calls):
            d, _ = await store.record(ctx, tool="bench_send@v1", arguments={"url": url, "n": i}, args_digest=str(i),
                                      idempotency_key=str(uuid.uuid4()), call_id=uuid.uuid4(), run_id=None,
                                      max_attempts=3)  # fmt: skip
            await queued.queue.enqueue(ctx.tenant_id, d.id)  # type: ignore[union-attr]
            ids.append(d.id)
        query = sa.text("SELECT count(*) FROM tenantgate.directives WHERE tenant_id = :t AND id = ANY(:ids) "
                        "AND status IN ('succeeded', 'failed')")  # fmt: skip
        while True:
            async with queued.db.tenant(ctx) as conn:
                done = await conn.scalar(query, {"t": ctx.tenant_id, "ids": ids})
            if done == len(ids):
                break
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - t0
        return Round(seconds, [seconds / len(ids)] * len(ids))

    async def one_round() -> dict[str, Round]:
        return {
            "executor only, no directive": await timed(bare, plan.calls),
            "directive, inline (record, claim, run, finish)": await timed(directive, plan.calls),
            "directives via queue, 1 worker (throughput)": await through_worker(),
        }

    try:
        return await repeat(one_round, plan.rounds)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


async def run_all(db: BenchDatabase, plan: DirectivePlan, console: Console) -> bool:
    async with FakeServer(instant) as server:
        inline = build(db, server.port, queue=False)
        queued = build(db, server.port, queue=True)
        try:
            await inline.db.verify()
            await inline.start()
            await queued.start()
            tenant = await new_tenant(inline)
            ctx = system_context(tenant.tenant_id, mode=inline.settings.mode, request_id="bench")
            owner = await inline.authenticator.authenticate(f"Bearer {tenant.key}", request_id="bench")
            ingest = await ingest_cases(queued, owner, plan)
            report(console, "webhook ingest (in-process, one delivery per call)", ingest, baseline="signal insert")
            url = f"http://127.0.0.1:{server.port}/v1/send"
            directives = await directive_cases(inline, queued, ctx, url, plan)
            report(console, "directives against an instant fake provider", directives,
                   baseline="executor only, no directive")  # fmt: skip
            if len(server.arrivals) < plan.calls * 3:
                raise RuntimeError("the fake provider saw fewer requests than calls: a case did not run")
            rate = directives["directives via queue, 1 worker (throughput)"].rate
            ok = rate > 0
            ingest_rate = ingest["webhook ingest: route + secret + verify + signal + enqueue"].rate
            verdict(console, f"one worker: {rate:.0f} directives/s; webhook ingest: {ingest_rate:.0f} req/s", ok)
            await inline.audit.drain()
            await queued.audit.drain()
        finally:
            await inline.stop()
            await queued.stop()
    return ok


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate directives and webhooks benchmark", plan, quick, describe(db))
        ok = uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
