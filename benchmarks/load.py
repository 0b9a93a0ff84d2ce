"""Load and soak: mixed traffic of several tenants against 2 API processes and 2 workers, then zero-loss checks.

Run from the repository root::

    .venv/bin/python benchmarks/load.py --redis-url redis://127.0.0.1:6379/0            # 2 minutes, 4 tenants
    .venv/bin/python benchmarks/load.py --quick --redis-url redis://127.0.0.1:6379/0    # 20 s, 3 tenants

Loopback only. The database is a throwaway one (`_db.bench_database`: embedded, or a fresh
database and roles on ``TENANTGATE_BENCH_DATABASE_URL``). Redis is required, from ``--redis-url``
or ``TENANTGATE_BENCH_REDIS_URL``: the processes share their rate-limit windows there. Its keys
are named by tenant ids this run makes up, so they meet no one else's; nothing is flushed.
The fake payment provider and the fake OpenAI-compatible model listen on 127.0.0.1, and the
processes' egress door reaches only them (``tests.cluster_node``).

The mix, the world and the checks are shared with ``tests/test_load.py`` (``tests/load_*.py``).
Prints one row per operation (count; HTTP answers 2xx / 4xx; operations per second; p50 and
p99 of the operation's latency, all its requests included), then each post-check as pass or
fail with its numbers; exits 1 if any check failed. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

# The harness modules sit next to this script; the load code is shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.load_mix import WEIGHTS, Shape
from tests.load_run import LoadResult, run_load
from tests.load_world import Installed

from _db import bench_database, describe
from _harness import arm_deadline, duration, percentile, verdict
from tenantgate.logs import configure_logging

SETUP_AND_CHECKS_S = 300  # on top of the traffic: starting 4 processes, tenants, settling, checks


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20 s, 3 tenants, at most 600 requests")
    parser.add_argument("--duration", type=float, help="seconds of traffic (default 120; quick 20)")
    parser.add_argument("--max-requests", type=int, help="HTTP requests at most (default 50000; quick 600)")
    parser.add_argument("--tenants", type=int, help="tenants driven at once (default 4; quick 3)")
    parser.add_argument("--concurrency", type=int, default=2, help="tasks per tenant (default 2)")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("TENANTGATE_BENCH_REDIS_URL"),
        help="required (or TENANTGATE_BENCH_REDIS_URL)",
    )
    args = parser.parse_args()
    if not args.redis_url:
        parser.error("Redis is required: --redis-url or TENANTGATE_BENCH_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    args.duration = args.duration or (20.0 if args.quick else 120.0)
    args.max_requests = args.max_requests or (600 if args.quick else 50_000)
    args.tenants = args.tenants or (3 if args.quick else 4)
    bounded = 0 < args.duration <= 3600 and 0 < args.max_requests <= 1_000_000 and 1 <= args.concurrency <= 16
    if not bounded or not 2 <= args.tenants <= 50:
        parser.error(
            "--duration 1..3600, --max-requests 1..1000000, --tenants 2..50 (isolation needs two), --concurrency 1..16"
        )
    return args


def report(console: Console, result: LoadResult) -> None:
    traffic = result.traffic
    table = Table(title="Operations (2 API processes, 2 workers)", title_justify="left", title_style="bold")
    for column in ("operation", "count", "2xx / 4xx", "unexpected", "ops/s", "p50", "p99"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    by_op = defaultdict(list)
    for sample in traffic.samples:
        by_op[sample.op].append(sample)
    for op in WEIGHTS:
        samples = by_op.get(op, [])
        if not samples:
            continue
        latencies = [s.seconds for s in samples]
        statuses = [code for s in samples for code in s.statuses]
        table.add_row(
            op,
            f"{len(samples):,}",
            f"{sum(1 for c in statuses if c < 300):,} / {sum(1 for c in statuses if 400 <= c < 500):,}",
            f"{sum(1 for s in samples if not s.expected):,}",
            f"{len(samples) / traffic.seconds:,.1f}",
            duration(percentile(latencies, 50)),
            duration(percentile(latencies, 99)),
        )
    console.print(table)
    console.print(
        f"{len(traffic.samples):,} operations, {len(traffic.sent):,} HTTP requests in {traffic.seconds:.1f} s:"
        f" {len(traffic.samples) / traffic.seconds:,.1f} ops/s, {len(traffic.sent) / traffic.seconds:,.1f} req/s;"
        f" the workers finished the queue {result.settle_s:.1f} s after the traffic stopped"
    )
    for sample in [s for s in traffic.samples if not s.expected][:5]:
        console.print(f"  [red]unexpected[/red] {sample.op}: {sample.note}")
    console.print("[bold]Post-checks")
    for check in result.checks:
        verdict(console, f"{check.name}: {check.detail}", check.ok)


def main() -> int:
    args = arguments()
    arm_deadline(int(args.duration) + SETUP_AND_CHECKS_S)
    configure_logging("warning")  # the harness's own set-up (tenants, keys) is not news
    console = Console(width=None if sys.stdout.isatty() else 140)
    shape = Shape(duration_s=args.duration, max_requests=args.max_requests, concurrency=args.concurrency)
    with bench_database() as db, tempfile.TemporaryDirectory(prefix="tenantgate-load-") as root:
        console.rule("[bold]Load: mixed traffic, 2 API processes + 2 workers, one PostgreSQL, one Redis")
        console.print(
            f"{args.tenants} tenants x {args.concurrency} tasks, {args.duration:.0f} s or {args.max_requests:,}"
            f" requests at most; Python {platform.python_version()}, {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.1f} at start\n{describe(db)}"
        )
        installed = Installed(
            urls=db.urls, db_role_prefix=db.roles.owner.removesuffix("_owner"), redis_url=args.redis_url
        )
        result = asyncio.run(run_load(installed, Path(root), shape, tenants=args.tenants))
        report(console, result)
        console.print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
