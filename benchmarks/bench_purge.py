"""Purge benchmark: how long purging one tenant takes, and how it grows from 10k to 100k rows.

Run from the repository root::

    .venv/bin/python benchmarks/bench_purge.py           # full run: 10k, 30k, 100k rows
    .venv/bin/python benchmarks/bench_purge.py --quick   # short run (1k, 3k, 10k rows), to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit; with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and roles
are provisioned on that server instead, and dropped afterwards.

Each round, for each size, two fresh tenants get the same data: ``rows`` rows across the
runtime and memory tables (40% memory entries, 40% messages in one session, 20% run events
of one run; inserted with ``generate_series``), 1,000 artifacts (rows and files in the local
storage backend) and a sealed credential. Then tenant A's purge is requested and executed
(``--now`` with confirmation) through :class:`PurgeService`, and timed end to end: every
step, the catalog read, batched deletes (5,000 rows a batch) over every tenant-owned table,
the storage prefix, shredding and the audit erasure. B must be untouched afterwards.

See benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import uvloop
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import BenchError, Plan, discarded_logs, header, start, verdict
from tenantgate.auth import system_context
from tenantgate.installation import Services

TABLES = ("memory_entries", "messages", "run_events")


@dataclass(frozen=True)
class PurgePlan(Plan):
    sizes: tuple[int, ...]  # rows per tenant
    artifacts: int  # per tenant


FULL = PurgePlan(rounds=3, sizes=(10_000, 30_000, 100_000), artifacts=1_000, deadline_s=3000)
QUICK = PurgePlan(rounds=1, sizes=(1_000, 3_000, 10_000), artifacts=100, deadline_s=300)


def load(db: BenchDatabase, tenant_id: uuid.UUID, owner: uuid.UUID, rows: int) -> None:
    """``rows`` rows of the tenant across three tables, set-based, as the admin role."""
    memory, messages = rows * 4 // 10, rows * 4 // 10
    events = rows - memory - messages
    session, run = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(db.urls.admin) as conn:
        conn.execute(
            "INSERT INTO tenantgate.memory_entries (tenant_id, id, key, title, content, tags, version, created_by,"
            " updated_by) SELECT %(t)s, gen_random_uuid(), 'note/' || g, 'title ' || g,"
            " 'content of note ' || g || ' with a few more words in it', '{ops}', 1, %(o)s, %(o)s"
            " FROM generate_series(1, %(n)s) g",
            {"t": tenant_id, "o": owner, "n": memory},
        )
        conn.execute(
            "INSERT INTO tenantgate.sessions (tenant_id, id, channel, created_by) VALUES (%s, %s, 'http', %s)",
            [tenant_id, session, owner],
        )
        conn.execute(
            "INSERT INTO tenantgate.runs (tenant_id, id, session_id, started_by, started_by_kind, execution_id,"
            " planner, status) VALUES (%s, %s, %s, %s, 'user', gen_random_uuid(), 'scripted', 'completed')",
            [tenant_id, run, session, owner],
        )
        conn.execute(
            "INSERT INTO tenantgate.messages (tenant_id, id, session_id, run_id, role, content)"
            " SELECT %(t)s, gen_random_uuid(), %(s)s, %(r)s, 'user', 'message number ' || g"
            " FROM generate_series(1, %(n)s) g",
            {"t": tenant_id, "s": session, "r": run, "n": messages},
        )
        conn.execute(
            "INSERT INTO tenantgate.run_events (tenant_id, run_id, seq, kind, data)"
            " SELECT %(t)s, %(r)s, g, 'tool_result', jsonb_build_object('step', g) FROM generate_series(1, %(n)s) g",
            {"t": tenant_id, "r": run, "n": events},
        )
        conn.commit()


def counts(db: BenchDatabase, tenant_id: uuid.UUID) -> dict[str, int]:
    with psycopg.connect(db.urls.admin) as conn:
        found = {}
        for table in (*TABLES, "artifacts", "credentials"):
            row = conn.execute(f"SELECT count(*) FROM tenantgate.{table} WHERE tenant_id = %s", [tenant_id]).fetchone()  # noqa: S608
            found[table] = int(row[0]) if row else -1
        return found


async def filled(services: Services, db: BenchDatabase, rows: int, artifacts: int) -> tuple[uuid.UUID, str]:
    tenant = await new_tenant(services)
    ctx = system_context(tenant.tenant_id, mode=services.settings.mode, request_id="bench")
    await asyncio.to_thread(load, db, tenant.tenant_id, tenant.owner_id, rows)
    await services.credentials.create(ctx, name="api", kind="api_key", secret={"api_key": "sk-bench-" + "x" * 24})
    for i in range(artifacts):
        await services.artifacts.create(ctx, f"artifact {i} of the tenant".encode(), kind="upload")
    return tenant.tenant_id, (await services.tenants.get(tenant.tenant_id)).name


async def one(services: Services, db: BenchDatabase, rows: int, artifacts: int) -> tuple[float, dict[str, int]]:
    a, name = await filled(services, db, rows, artifacts)
    b, _ = await filled(services, db, rows, artifacts)
    b_before = counts(db, b)
    await services.purges.request(a, reason="benchmark", requested_by="bench")
    started = time.perf_counter()
    record = await services.purges.execute(a, executed_by="bench", now=True, confirm=name)
    seconds = time.perf_counter() - started
    left = counts(db, a)
    if record.report.get("objects_deleted") != artifacts or any(left.values()):
        raise BenchError(f"the purge left rows or objects of A: {left}, report {record.report}")
    if counts(db, b) != b_before or len(await services.artifacts.stored_keys(b)) != artifacts:
        raise BenchError("the purge of A changed B")
    return seconds, dict(record.report.get("step_ms", {}))


async def run_all(db: BenchDatabase, plan: PurgePlan, console: Console) -> bool:
    root = Path(tempfile.mkdtemp(prefix="tenantgate-bench-purge-"))
    kwargs = {**settings_kwargs(db), "artifacts_root": root / "artifacts", "vault_tenant_keys_dir": root / "keys"}
    times: dict[int, list[float]] = {size: [] for size in plan.sizes}
    steps: dict[str, int] = {}
    async with running_services(kwargs) as services:
        await one(services, db, plan.sizes[0] // 10, 10)  # warm-up
        for _ in range(plan.rounds):
            for size in plan.sizes:
                seconds, steps = await one(services, db, size, plan.artifacts)
                times[size].append(seconds)
        await services.audit.drain()
    medians = {size: statistics.median(values) for size, values in times.items()}
    base = medians[plan.sizes[0]]
    table = Table(title=f"purge one tenant (a second tenant of the same size present), median of {plan.rounds}",
                  title_justify="left", title_style="bold")  # fmt: skip
    for column in ("rows", "artifacts", "seconds", "rows/s", "spread", "time vs base"):
        table.add_column(column, justify="right")
    for size in plan.sizes:
        spread = (max(times[size]) - min(times[size])) / medians[size] if medians[size] else 0.0
        table.add_row(f"{size:,}" + (" (base)" if size == plan.sizes[0] else ""), f"{plan.artifacts:,}",
                      f"{medians[size]:.2f}", f"{size / medians[size]:,.0f}", f"{spread:.0%}",
                      f"{medians[size] / base:.2f}x")  # fmt: skip
    console.print(table)
    growth = medians[plan.sizes[-1]] / base
    factor = plan.sizes[-1] / plan.sizes[0]
    ok = growth <= factor * 1.5  # linear or better in the rows, with room for noise
    text = f"growth {plan.sizes[-1]:,}/{plan.sizes[0]:,} rows: {growth:.2f}x the time for {factor:g}x the rows"
    verdict(console, f"{text} (target ≤ {factor * 1.5:g}x: no worse than linear)", ok)
    console.print(f"  steps of the last {plan.sizes[-1]:,}-row purge (ms): {steps}")
    return ok


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate purge benchmark", plan, quick, describe(db))
        ok = uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
