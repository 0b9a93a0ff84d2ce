"""Retention benchmark: the batched retention job against one set-based DELETE of the same rows.

Run from the repository root::

    .venv/bin/python benchmarks/bench_retention.py           # full run
    .venv/bin/python benchmarks/bench_retention.py --quick   # short run, to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit; with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and roles
are provisioned on that server instead, and dropped afterwards.

The measured tenant holds ``rows`` aged messages (400 days old) and as many fresh ones; four
other tenants hold ``rows`` aged messages each that must stay (their retention is "forever").
Before every round the aged rows are loaded again (COPY, not timed). Cases, each removing the
same ``rows`` aged messages of the one tenant (an "op" is one row removed):

- **one DELETE** (base): ``DELETE ... WHERE tenant_id = $1 AND created_at < $2`` in one
  transaction: the fastest way, and the one that holds every row lock until it commits;
- **job, batch N**: :meth:`RetentionJob.run` for the tenant, only the ``messages`` class due,
  ``N`` rows per transaction (each batch: lock N oldest with SKIP LOCKED, delete by ctid).

See benchmarks/README.md.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import uvloop
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import BenchError, Case, Plan, Round, Stats, compare, discarded_logs, header, report, start, verdict
from tenantgate.auth import system_context
from tenantgate.installation import Services
from tenantgate.retention import DataClass, RetentionJob

OTHER_TENANTS = 4
BATCHES = (100, 1_000, 10_000)
# Batching costs round trips; at 1,000 rows a batch it should keep at least a quarter of the
# set-based DELETE's rate. A ratio, not a time: both share the machine's load.
TARGET_RATIO = 1 / 4


@dataclass(frozen=True)
class RetentionPlan(Plan):
    rows: int  # aged messages of the measured tenant, removed each round


FULL = RetentionPlan(rounds=5, rows=100_000, deadline_s=900)
QUICK = RetentionPlan(rounds=3, rows=10_000, deadline_s=300)


def session_for(db: BenchDatabase, tenant_id: uuid.UUID, owner_id: uuid.UUID) -> uuid.UUID:
    session = uuid.uuid4()
    with psycopg.connect(db.urls.admin) as conn:
        conn.execute(
            "INSERT INTO tenantgate.sessions (tenant_id, id, created_by) VALUES (%s, %s, %s)",
            [tenant_id, session, owner_id],
        )
    return session


def load(db: BenchDatabase, tenant_id: uuid.UUID, session: uuid.UUID, rows: int, *, aged: bool) -> None:
    """``rows`` messages of the tenant, 400 days old or new, with COPY as the admin role."""
    with psycopg.connect(db.urls.admin) as conn, conn.cursor() as cur:
        columns = "tenant_id, id, session_id, role, content, created_at"
        when = "2000-01-01T00:00:00+00:00" if aged else time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        with cur.copy(f"COPY tenantgate.messages ({columns}) FROM STDIN") as copy:
            for _ in range(rows):
                copy.write_row((tenant_id, uuid.uuid4(), session, "user", "an old message " * 4, when))
        conn.commit()
        conn.execute("ANALYZE tenantgate.messages")


def count(db: BenchDatabase, tenant_id: uuid.UUID) -> int:
    with psycopg.connect(db.urls.admin) as conn:
        row = conn.execute("SELECT count(*) FROM tenantgate.messages WHERE tenant_id = %s", [tenant_id]).fetchone()
    return int(row[0]) if row else -1


def cases(
    services: Services, db: BenchDatabase, tenant_id: uuid.UUID, session: uuid.UUID, rows: int
) -> dict[str, Case]:
    def timed(remove: object) -> Case:
        async def case() -> Round:
            load(db, tenant_id, session, rows, aged=True)
            started = time.perf_counter()
            removed = await remove()  # type: ignore[operator]
            seconds = time.perf_counter() - started
            if removed != rows:
                raise BenchError(f"removed {removed} rows, expected {rows}")
            return Round(seconds, [seconds / rows] * rows)

        return case

    async def one_delete() -> int:
        with psycopg.connect(db.urls.admin) as conn:
            result = conn.execute(
                "DELETE FROM tenantgate.messages WHERE tenant_id = %s AND created_at < now() - interval '365 days'",
                [tenant_id],
            )
            return result.rowcount

    def job(batch: int) -> object:
        runner = RetentionJob(
            db=services.db, audit=services.audit, periods=services.retention.periods, artifacts=services.artifacts,
            mode=services.settings.mode, batch_size=batch,
        )  # fmt: skip

        async def run() -> int:
            (tenant,) = (await runner.run(tenant_id=tenant_id)).tenants
            return {c.data_class: c.count for c in tenant.classes}[DataClass.MESSAGES]

        return run

    return {"one DELETE": timed(one_delete), **{f"job, batch {b:,}": timed(job(b)) for b in BATCHES}}


async def run_all(db: BenchDatabase, plan: RetentionPlan, console: Console) -> bool:
    async with running_services(settings_kwargs(db)) as services:
        measured = await new_tenant(services)
        ctx = system_context(measured.tenant_id, mode=services.settings.mode, request_id="bench")
        # Only messages are due: every other class kept forever, so the job's time is the messages'.
        keep = {c.value: None for c in DataClass if c is not DataClass.MESSAGES}
        await services.retention.periods.set(ctx, keep)
        session = session_for(db, measured.tenant_id, measured.owner_id)
        load(db, measured.tenant_id, session, plan.rows, aged=False)
        others = [await new_tenant(services) for _ in range(OTHER_TENANTS)]
        for other in others:
            octx = system_context(other.tenant_id, mode=services.settings.mode, request_id="bench")
            await services.retention.periods.set(octx, dict.fromkeys((c.value for c in DataClass), None))
            load(db, other.tenant_id, session_for(db, other.tenant_id, other.owner_id), plan.rows, aged=True)
        results: dict[str, Stats] = await compare(
            cases(services, db, measured.tenant_id, session, plan.rows), plan.rounds
        )
        total = (OTHER_TENANTS + 2) * plan.rows
        title = f"retention: {plan.rows:,} aged messages of one tenant ({total:,} in the table); op = one row"
        report(console, title, results, baseline="one DELETE")
        if count(db, measured.tenant_id) != plan.rows or any(count(db, o.tenant_id) != plan.rows for o in others):
            raise BenchError("fresh rows or another tenant's rows were removed")
        rate, base = results["job, batch 1,000"].rate, results["one DELETE"].rate
        ok = rate >= TARGET_RATIO * base
        verdict(
            console,
            f"job, batch 1,000: {rate:,.0f} rows/s = {rate / base:.2f}x one DELETE (target ≥ {TARGET_RATIO:.2f}x)",
            ok,
        )
        await services.audit.drain()
    return ok


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate retention benchmark", plan, quick, describe(db))
        ok = uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
