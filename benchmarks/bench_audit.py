"""Audit log benchmark: appends/s and latency per append, 16 concurrent writers, one tenant and 16 tenants.

Run from the repository root::

    .venv/bin/python benchmarks/bench_audit.py           # full run
    .venv/bin/python benchmarks/bench_audit.py --quick   # short run, to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit; with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and roles
are provisioned on that server instead, and dropped afterwards.

Cases, each with 16 writer tasks in one process (the API's shape: one event loop):

- **plain INSERT** (base): the same row into a table shaped like ``audit_events`` (same
  columns, indexes, checks, forced RLS), one transaction per event, no chain;
- **append, own transaction**: ``AuditLog.append`` in a ``db.tenant`` transaction per
  event: the chain without group commit;
- **record (group commit)**: ``AuditLog.record``, what gate decisions and tool outcomes use.

Every chain is verified after the run; a broken one fails the benchmark.
See benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import uvloop
from psycopg import sql
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, running_services, settings_kwargs
from _harness import BenchError, Case, Plan, Round, Stats, compare, discarded_logs, header, report, start, verdict
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.installation import Services
from tenantgate.store import CURRENT_TENANT

WRITERS = 16
TARGET = 5_000  # appends/s
PLAIN = "bench_audit_plain"


@dataclass(frozen=True)
class AuditPlan(Plan):
    """Appends per round and case, shared by the writers."""

    appends: int


FULL = AuditPlan(rounds=7, appends=4_000, deadline_s=600)
QUICK = AuditPlan(rounds=5, appends=800, deadline_s=240)

Writer = Callable[[TenantContext], Awaitable[object]]


def event() -> AuditEvent:
    """A gate decision as the boundary will record it: built per append, as callers do."""
    return AuditEvent(
        "gate.decided", decision="allow", tool="echo@v1", payload={"rule_ids": ["grant:basics"], "args_bytes": 42}
    )


async def writers(write: Writer, contexts: list[TenantContext], appends: int) -> Round:
    """``WRITERS`` tasks, task i always writing for ``contexts[i % len(contexts)]``; wall time and latencies."""
    latencies: list[float] = []

    async def writer(ctx: TenantContext, calls: int) -> None:
        for _ in range(calls):
            started = time.perf_counter()
            await write(ctx)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for i in range(WRITERS):
            group.create_task(writer(contexts[i % len(contexts)], appends // WRITERS))
    return Round(time.perf_counter() - started, latencies)


# --- the three ways to write -----------------------------------------------------------------


def plain_insert(services: Services) -> Writer:
    """The same row, no chain: its own seq from a counter, made-up hashes, one transaction each."""
    seqs = itertools.count(1)
    insert = sql.SQL(
        "INSERT INTO {} (tenant_id, seq, occurred_at, action, decision, code, tool, principal_id,"
        " principal_kind, acting_for, request_id, payload, payload_digest, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)"
    ).format(sql.Identifier("tenantgate", PLAIN))

    async def write(ctx: TenantContext) -> None:
        e = event()
        digest = hashlib.sha256(e.canonical_payload.encode()).digest()
        async with services.db.tenant(ctx) as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.execute(
                insert,
                (ctx.tenant_id, next(seqs), datetime.now(UTC), e.action, e.decision, e.code, e.tool,
                 ctx.principal_id, ctx.kind.value, None, ctx.request_id, e.canonical_payload, digest, digest, digest),
            )  # fmt: skip

    return write


def append_alone(services: Services, log: AuditLog) -> Writer:
    async def write(ctx: TenantContext) -> None:
        async with services.db.tenant(ctx) as conn:
            await log.append(conn, ctx, event())

    return write


def record(log: AuditLog) -> Writer:
    async def write(ctx: TenantContext) -> None:
        await log.record(ctx, event())

    return write


# --- setup and checks ---------------------------------------------------------------------------


def create_plain_table(db: BenchDatabase) -> None:
    """``audit_events``' twin (columns, checks, indexes, forced RLS, app INSERT/SELECT), without a chain."""
    name = sql.Identifier("tenantgate", PLAIN)
    with psycopg.connect(db.urls.owner, autocommit=True) as owner:
        owner.execute(sql.SQL("CREATE TABLE {} (LIKE tenantgate.audit_events INCLUDING ALL)").format(name))
        owner.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(name))
        owner.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(name))
        predicate = sql.SQL(f"tenant_id = {CURRENT_TENANT}")
        policy = sql.SQL("CREATE POLICY tenant_isolation ON {} USING ({}) WITH CHECK ({})")
        owner.execute(policy.format(name, predicate, predicate))
        owner.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(name, sql.Identifier(db.roles.app)))


def drop_plain_table(db: BenchDatabase) -> None:
    with psycopg.connect(db.urls.owner, autocommit=True) as owner:
        owner.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("tenantgate", PLAIN)))


async def check_chains(log: AuditLog, contexts: list[TenantContext]) -> int:
    """Verify every chain the run wrote; the number of events checked."""
    checked = 0
    for ctx in contexts:
        chain = await log.verify(ctx.tenant_id)
        if not chain.ok:
            raise BenchError(f"chain {ctx.tenant_id} broken at {chain.first_broken_seq}: {chain.reason}")
        checked += chain.events_checked
    return checked


def contexts(services: Services, n: int) -> list[TenantContext]:
    return [system_context(uuid.uuid4(), mode=services.settings.mode, request_id="bench") for _ in range(n)]


# --- main ---------------------------------------------------------------------------------------


async def bench_layout(services: Services, tenants: list[TenantContext], plan: AuditPlan) -> dict[str, Stats]:
    log = services.audit
    ways = {
        "plain INSERT, no chain": plain_insert(services),  # one seq counter for the whole run
        "append(), own transaction": append_alone(services, log),
        "record(), group commit": record(log),
    }
    cases: dict[str, Case] = {
        name: functools.partial(writers, write, tenants, plan.appends) for name, write in ways.items()
    }
    return await compare(cases, plan.rounds)


async def run_all(db: BenchDatabase, plan: AuditPlan, console: Console) -> bool:
    settings = settings_kwargs(db)
    ok = True
    create_plain_table(db)
    try:
        async with running_services(settings) as services:
            layouts = {"1 tenant": contexts(services, 1), f"{WRITERS} tenants": contexts(services, WRITERS)}
            for layout, tenants in layouts.items():
                results = await bench_layout(services, tenants, plan)
                report(console, f"{WRITERS} writers into {layout}, {plan.appends:,} appends/round", results,
                       baseline="plain INSERT, no chain")  # fmt: skip
                rate = results["record(), group commit"].rate
                verdict(console, f"record() into {layout}: {rate:,.0f} appends/s (target ≥ {TARGET:,})", rate >= TARGET)
                ok = ok and rate >= TARGET
                checked = await check_chains(services.audit, tenants)
                console.print(f"  [dim]verified {len(tenants)} chain(s), {checked:,} events: intact[/dim]")
    finally:
        drop_plain_table(db)
    return ok


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate audit log benchmark", plan, quick, describe(db), _settings_line(db))
        uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")


def _settings_line(db: BenchDatabase) -> str:
    with psycopg.connect(db.urls.app) as conn:
        rows: list[Any] = [conn.execute(f"SHOW {name}").fetchone() for name in ("fsync", "synchronous_commit")]
    return f"fsync={rows[0][0]}, synchronous_commit={rows[1][0]} (the audit forces synchronous_commit=on)"


if __name__ == "__main__":
    main()
