"""Foundation benchmarks: API-key verification, ``GET /v1/whoami`` over HTTP, RLS cost on indexed reads.

Run from the repository root::

    .venv/bin/python benchmarks/bench_foundation.py           # full run, a few minutes
    .venv/bin/python benchmarks/bench_foundation.py --quick   # short run, to check it works

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit. With ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL) a fresh database and a
fresh set of roles are provisioned on that server instead, and dropped afterwards.

Every measurement runs one discarded warm-up round, then several rounds, and reports
medians over the rounds. Within a round, the cases run as blocks whose order flips every
round, or, for A/B comparisons of single operations (refused keys, RLS vs no RLS), call by
call in alternation. Ratios compare cases measured in the same run. See benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import hmac
import random
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import uvloop
from psycopg import sql
from psycopg.types.numeric import Int8
from rich.console import Console

# The harness modules sit next to this script. Python already puts a script's directory first on
# sys.path, but not under -P / PYTHONSAFEPATH, nor with `python -m benchmarks.bench_foundation`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import (
    BenchError,
    Case,
    Op,
    Plan,
    Round,
    Stats,
    compare,
    discarded_logs,
    header,
    interleave,
    repeat,
    report,
    rounds_of,
    run_concurrently,
    start,
    sync_case,
    time_each,
    verdict,
)
from _serve import DRIVERS, AppFactory, bare_app, load_case, served, tenantgate_app
from tenantgate.auth import generate_key, hash_key, parse_key
from tenantgate.errors import Unauthenticated
from tenantgate.installation import Services
from tenantgate.store import CURRENT_TENANT, TENANT_SETTING
from tenantgate.store import tables as schema

RLS_TABLE, PLAIN_TABLE = "bench_items", "bench_items_norls"
RLS_TENANTS, ROWS_PER_TENANT = 100, 2_000


@dataclass(frozen=True)
class FoundationPlan(Plan):
    """How much work each measurement does. Every count is fixed: the run is bounded."""

    hmac_calls: int
    auth_calls: int  # per round; the concurrent case does twice as many
    http_requests: int  # per round and server
    queries_per_tenant: int  # per round, table and query shape, for each of the RLS_TENANTS
    auth_tasks: int = 8
    http_connections: int = 16


FULL = FoundationPlan(
    rounds=7, hmac_calls=20_000, auth_calls=800, http_requests=1_500, queries_per_tenant=40, deadline_s=600
)
QUICK = FoundationPlan(
    rounds=5, hmac_calls=2_000, auth_calls=150, http_requests=300, queries_per_tenant=5, deadline_s=240
)


# --- 1. API-key verification in-process ----------------------------------------------------


async def bench_auth(services: Services, pepper: bytes, key: str, plan: FoundationPlan) -> dict[str, Stats]:
    auth, stored = services.authenticator, hash_key(pepper, parse_key(key))

    def hmac_only(_: int) -> None:
        if not hmac.compare_digest(hash_key(pepper, parse_key(key)), stored):
            raise BenchError("the baseline hash does not match")

    async def verify() -> None:
        await auth.authenticate_key(key, request_id="bench")

    return await compare(
        {
            "parse_key + hash_key + compare_digest": sync_case(
                lambda: Round.sequential(time_each(hmac_only, range(plan.hmac_calls)))
            ),
            "authenticate_key, sequential": partial(run_concurrently, verify, plan.auth_calls),
            f"authenticate_key, {plan.auth_tasks} tasks": partial(
                run_concurrently, verify, 2 * plan.auth_calls, plan.auth_tasks
            ),
        },
        plan.rounds,
    )


async def bench_auth_failures(services: Services, key: str, plan: FoundationPlan) -> dict[str, Stats]:
    """A known prefix with a wrong secret vs a prefix that does not exist: should cost the same."""
    wrong_secret = f"tg_{parse_key(key).prefix}_{secrets.token_urlsafe(32)}"
    unknown_prefix = generate_key().value

    def refused(bad_key: str) -> Op:
        async def attempt(_: int) -> None:
            with contextlib.suppress(Unauthenticated):
                await services.authenticator.authenticate_key(bad_key, request_id="bench")
                raise BenchError("a bad key was accepted")

        return attempt

    ops = {"known prefix, wrong secret": refused(wrong_secret), "unknown prefix": refused(unknown_prefix)}

    async def one_round() -> dict[str, Round]:
        latencies: dict[str, list[float]] = {}
        await interleave(ops, range(plan.auth_calls), latencies)
        return rounds_of(latencies)

    return await repeat(one_round, plan.rounds)


# --- 2. GET /v1/whoami over HTTP -----------------------------------------------------------


async def bench_http(settings: dict[str, Any], key: str, plan: FoundationPlan) -> dict[str, dict[str, Stats]]:
    """Both servers run throughout; each client driver measures both, alternating."""
    targets: dict[str, tuple[AppFactory, dict[str, Any], str, dict[str, str]]] = {
        "bare FastAPI GET /noop": (bare_app, {}, "/noop", {}),
        "tenantgate GET /v1/whoami": (
            tenantgate_app,
            {"settings": settings},
            "/v1/whoami",
            {"Authorization": f"Bearer {key}"},
        ),
    }
    results: dict[str, dict[str, Stats]] = {}
    with contextlib.ExitStack() as servers:
        urls = {
            name: servers.enter_context(served(factory, kwargs, plan.deadline_s))
            for name, (factory, kwargs, _, _) in targets.items()
        }
        for driver_name, driver in DRIVERS.items():
            async with contextlib.AsyncExitStack() as clients:
                cases: dict[str, Case] = {
                    name: await load_case(
                        clients,
                        driver,
                        urls[name],
                        path,
                        headers,
                        requests=plan.http_requests,
                        connections=plan.http_connections,
                    )
                    for name, (_, _, path, headers) in targets.items()
                }
                results[driver_name] = await compare(cases, plan.rounds)
    return results


# --- 3. Indexed tenant-scoped SELECT with and without RLS ----------------------------------

POINT = "SELECT id, payload FROM {} WHERE tenant_id = %(tenant)s AND id = %(id)s"
RANGE = "SELECT id, payload FROM {} WHERE tenant_id = %(tenant)s AND id BETWEEN %(id)s AND %(id)s + 50"
RANGE_ROWS = 51  # ids are drawn from 1 .. ROWS_PER_TENANT - 50, so every range is full
SET_TENANT = f"SELECT set_config('{TENANT_SETTING}', %s, true)"


def qualified(table: str) -> sql.Identifier:
    return sql.Identifier(schema.SCHEMA, table)


def create_tables(owner: psycopg.Connection[Any], app_role: str, tenants: list[uuid.UUID]) -> None:
    """Two identical tables; the first made tenant-owned as ``rls.make_tenant_owned`` does it."""
    for table in (RLS_TABLE, PLAIN_TABLE):
        name = qualified(table)
        owner.execute(
            sql.SQL(
                "CREATE TABLE {} (tenant_id uuid NOT NULL, id bigint NOT NULL, payload text NOT NULL,"
                " PRIMARY KEY (tenant_id, id))"
            ).format(name)
        )
        owner.execute(
            sql.SQL(
                "INSERT INTO {} SELECT t, g, md5(t::text || g) || md5(g || t::text)"
                " FROM unnest(%s::uuid[]) AS t, generate_series(1, %s) AS g"
            ).format(name),
            [tenants, ROWS_PER_TENANT],
        )
        owner.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(name, sql.Identifier(app_role)))
        # Sets hint bits and the visibility map now, so autovacuum does not start mid-measurement.
        owner.execute(sql.SQL("VACUUM (ANALYZE) {}").format(name))
    # Rows are loaded first: with FORCE, even the owner's inserts would need a tenant.
    predicate = sql.SQL(f"tenant_id = {CURRENT_TENANT}")
    name = qualified(RLS_TABLE)
    owner.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(name))
    owner.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(name))
    owner.execute(
        sql.SQL("CREATE POLICY tenant_isolation ON {} USING ({}) WITH CHECK ({})").format(name, predicate, predicate)
    )


def drop_tables(owner: psycopg.Connection[Any]) -> None:
    for table in (RLS_TABLE, PLAIN_TABLE):
        owner.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(table)))


Batches = list[tuple[uuid.UUID, list[int]]]  # per tenant, the first ids to query


def fetcher(conn: psycopg.Connection[Any], query: sql.Composed, tenant: uuid.UUID, rows: int) -> Op:
    async def fetch(first_id: int) -> None:  # blocking psycopg: nothing else runs on the loop meanwhile
        got = conn.execute(query, {"tenant": tenant, "id": Int8(first_id)}, prepare=True).fetchall()
        if len(got) != rows:  # an RLS table with no tenant set would answer fast, and wrongly
            raise BenchError(f"expected {rows} rows, got {len(got)}")

    return fetch


async def bench_query(
    conn: psycopg.Connection[Any], shape: str, rows: int, batches: Batches, plan: FoundationPlan
) -> dict[str, Stats]:
    """Both tables, alternately with the same ids, in one transaction per tenant that set the tenant.

    Only the SELECTs are timed, not BEGIN, set_config or COMMIT.
    """
    queries = {
        "no RLS": sql.SQL(shape).format(qualified(PLAIN_TABLE)),
        "RLS (forced, tenant_isolation)": sql.SQL(shape).format(qualified(RLS_TABLE)),
    }

    async def one_round() -> dict[str, Round]:
        latencies: dict[str, list[float]] = {}
        for tenant, ids in batches:
            with conn.transaction():
                conn.execute(SET_TENANT, [str(tenant)])
                ops = {name: fetcher(conn, query, tenant, rows) for name, query in queries.items()}
                await interleave(ops, ids, latencies)
        return rounds_of(latencies)

    return await repeat(one_round, plan.rounds)


def explain(conn: psycopg.Connection[Any], tenant: uuid.UUID) -> str:
    with conn.transaction():
        conn.execute(SET_TENANT, [str(tenant)])
        query = sql.SQL("EXPLAIN (COSTS OFF) " + POINT).format(qualified(RLS_TABLE))
        lines = [row[0].strip() for row in conn.execute(query, {"tenant": tenant, "id": Int8(1)})]
    return " | ".join(lines)


async def bench_rls(db: BenchDatabase, plan: FoundationPlan, console: Console) -> dict[str, dict[str, Stats]]:
    rng = random.Random(1)
    tenants = [uuid.uuid4() for _ in range(RLS_TENANTS)]
    batches = [
        (t, [rng.randint(1, ROWS_PER_TENANT - RANGE_ROWS + 1) for _ in range(plan.queries_per_tenant)]) for t in tenants
    ]
    with psycopg.connect(db.urls.owner, autocommit=True) as owner:
        try:
            create_tables(owner, db.roles.app, tenants)
            with psycopg.connect(db.urls.app, autocommit=True) as app:
                console.print(f"  plan (RLS point query): [dim]{explain(app, tenants[0])}[/dim]")
                return {
                    "point query (tenant_id, id)": await bench_query(app, POINT, 1, batches, plan),
                    "range query (51 ids)": await bench_query(app, RANGE, RANGE_ROWS, batches, plan),
                }
        finally:
            drop_tables(owner)


# --- main ----------------------------------------------------------------------------------


async def run_all(db: BenchDatabase, plan: FoundationPlan, console: Console) -> None:
    settings = settings_kwargs(db)
    async with running_services(settings) as services:
        key = (await new_tenant(services)).key
        await section_auth(services, settings["pepper"].encode(), key, plan, console)
    await section_http(settings, key, plan, console)
    await section_rls(db, plan, console)


async def section_auth(services: Services, pepper: bytes, key: str, plan: FoundationPlan, console: Console) -> None:
    n = plan.auth_calls
    report(
        console,
        f"1a. API-key verification in-process ({n} calls/round, {2 * n} with {plan.auth_tasks} tasks)",
        await bench_auth(services, pepper, key, plan),
        baseline="parse_key + hash_key + compare_digest",
    )
    failures = await bench_auth_failures(services, key, plan)
    report(console, f"1b. Refused API keys, sequential ({n} calls/round)", failures, "known prefix, wrong secret")
    rel = failures["unknown prefix"].p50 / failures["known prefix, wrong secret"].p50
    verdict(console, f"timing equality: p50 unknown prefix / wrong secret = {rel:.3f} (want 0.9-1.1)", 0.9 < rel < 1.1)


async def section_http(settings: dict[str, Any], key: str, plan: FoundationPlan, console: Console) -> None:
    for driver, results in (await bench_http(settings, key, plan)).items():
        title = f"2. HTTP via {driver}: 1 uvicorn worker, {plan.http_connections} keep-alive connections"
        report(console, f"{title}, {plan.http_requests} req/round", results, baseline="bare FastAPI GET /noop")


async def section_rls(db: BenchDatabase, plan: FoundationPlan, console: Console) -> None:
    console.print(
        f"[bold]3. Indexed SELECT as the app role[/bold], {RLS_TENANTS} tenants x {ROWS_PER_TENANT:,} rows, "
        f"{RLS_TENANTS * plan.queries_per_tenant:,} prepared queries/round/table"
    )
    for shape, results in (await bench_rls(db, plan, console)).items():
        report(console, f"3. {shape}", results, baseline="no RLS")
        rel = results["RLS (forced, tenant_isolation)"].p50 / results["no RLS"].p50
        verdict(console, f"{shape}: p50 RLS / no RLS = {rel:.3f} (target < 1.2)", rel < 1.2)


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:  # log lines are rendered as in production, then discarded
        header(console, "tenantgate foundation benchmarks", plan, quick, describe(db))
        uvloop.run(run_all(db, plan, console))  # the loop uvicorn serves on
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")


if __name__ == "__main__":
    main()
