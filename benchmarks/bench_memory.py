"""Tenant memory benchmark: ranked full-text search next to a point read, with many tenants' rows around.

Run from the repository root::

    .venv/bin/python benchmarks/bench_memory.py           # full run
    .venv/bin/python benchmarks/bench_memory.py --quick   # short run, to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit; with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and roles
are provisioned on that server instead, and dropped afterwards.

The measured tenant holds ``entries`` memory entries of ~60 words each (a 2,000-word
vocabulary, Zipf-like), and four other tenants hold as many, so every query has to stay
inside its tenant. Cases, each a sequence of calls through :class:`MemoryStore` (a real
tenant transaction under forced RLS per call):

- **get_by_key** (base): the unique-index point read;
- **search, 1 word** / **2 words** / **phrase** / **1 word + tag**: ``websearch_to_tsquery``
  over the GIN index, ranked with ``ts_rank_cd``, top 10;
- **put (update)**: a changed entry, its version row and its audit event in one transaction.

See benchmarks/README.md.
"""

from __future__ import annotations

import functools
import itertools
import random
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
from _harness import (
    BenchError,
    Case,
    Plan,
    Stats,
    compare,
    discarded_logs,
    header,
    report,
    run_concurrently,
    start,
    verdict,
)
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.installation import Services

TENANTS = 5
# A ranked search should cost at most a few point reads at the median. A ratio, not a time: the
# two share the machine's load, so it holds on a busy laptop and on a quiet server alike.
TARGET_RATIO = 5.0
VOCABULARY = [f"w{i:04d}" for i in range(2000)]
# Cumulative Zipf weights, computed once: random.choices would re-add 2,000 weights per call.
CUM_WEIGHTS = list(itertools.accumulate(1 / (i + 1) for i in range(len(VOCABULARY))))
TAGS = ["ops", "sales", "finance", "support", "legal"]


@dataclass(frozen=True)
class MemoryPlan(Plan):
    entries: int  # per tenant
    calls: int  # per case and round


FULL = MemoryPlan(rounds=7, entries=5_000, calls=120, deadline_s=600)
QUICK = MemoryPlan(rounds=5, entries=1_000, calls=40, deadline_s=240)


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCABULARY, cum_weights=CUM_WEIGHTS, k=n))


def load(db: BenchDatabase, tenant_ids: list[uuid.UUID], entries: int, seed: int = 7) -> None:
    """Bulk-load every tenant's entries with COPY as the admin role (it bypasses RLS); the search column fills in."""
    rng = random.Random(seed)
    with psycopg.connect(db.urls.admin) as conn, conn.cursor() as cur:
        columns = "tenant_id, id, key, title, content, tags, version, created_by, updated_by"
        with cur.copy(f"COPY tenantgate.memory_entries ({columns}) FROM STDIN") as copy:
            for tenant_id in tenant_ids:
                for i in range(entries):
                    tags = "{" + rng.choice(TAGS) + "}"
                    copy.write_row((tenant_id, uuid.uuid4(), f"note/{i}", words(rng, 4), words(rng, 60), tags, 1,
                                    tenant_id, tenant_id))  # fmt: skip
        conn.execute("ANALYZE tenantgate.memory_entries")
        conn.commit()


def cases(services: Services, ctx: TenantContext, plan: MemoryPlan) -> dict[str, Case]:
    store = services.memory
    rng = random.Random(11)
    # Words in about 1-6% of the entries: what a lookup searches for, neither everywhere nor nowhere.
    mid = VOCABULARY[100:600]

    async def get() -> object:
        return await store.get_by_key(ctx, f"note/{rng.randrange(plan.entries)}")

    async def search(query: str, tags: tuple[str, ...] = ()) -> object:
        return await store.search(ctx, query, max_results=10, tags=tags)

    async def one() -> object:
        return await search(rng.choice(mid))

    async def two() -> object:
        return await search(f"{rng.choice(mid)} {rng.choice(mid)}")

    async def phrase() -> object:
        return await search(f'"{rng.choice(VOCABULARY[:40])} {rng.choice(VOCABULARY[:40])}"')

    async def tagged() -> object:
        return await search(rng.choice(mid), (rng.choice(TAGS),))

    async def put() -> object:
        return await store.put(ctx, f"note/{rng.randrange(plan.entries)}", words(rng, 60))

    ops = {"get_by_key": get, "search, 1 word": one, "search, 2 words": two, "search, phrase": phrase,
           "search, 1 word + tag": tagged, "put (update, versioned, audited)": put}  # fmt: skip
    return {name: functools.partial(run_concurrently, op, plan.calls) for name, op in ops.items()}


async def run_all(db: BenchDatabase, plan: MemoryPlan, console: Console) -> bool:
    async with running_services(settings_kwargs(db)) as services:
        tenants = [await new_tenant(services) for _ in range(TENANTS)]
        load(db, [t.tenant_id for t in tenants], plan.entries)
        ctx = system_context(tenants[0].tenant_id, mode=services.settings.mode, request_id="bench")
        if not await services.memory.search(ctx, VOCABULARY[50], max_results=10):
            raise BenchError("a search for a common word found nothing: the data did not load")
        results: dict[str, Stats] = await compare(cases(services, ctx, plan), plan.rounds)
        title = f"memory, {plan.entries:,} entries in the tenant ({TENANTS * plan.entries:,} in the table), top 10"
        report(console, title, results, baseline="get_by_key")
        p50, base = results["search, 1 word"].p50, results["get_by_key"].p50
        ok = p50 <= TARGET_RATIO * base
        verdict(console, f"search, 1 word: p50 {p50 * 1e3:.2f} ms = {p50 / base:.2f}x a point read "
                f"(target ≤ {TARGET_RATIO:g}x)", ok)  # fmt: skip
        await services.audit.drain()
    return ok


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate memory benchmark", plan, quick, describe(db))
        ok = uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
