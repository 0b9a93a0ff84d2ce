"""What must hold after a load run, each check a pass or a fail with its numbers.

`settle` waits (bounded) for the workers to finish what the run queued; `check` then proves:
every answer was the one it had to be; every audited request (accepted or refused) has its event,
under its own tenant, in the trail; every tenant's hash chain verifies; every directive is final
and its effect happened exactly once at the fake provider; every accepted webhook delivery is one
processed signal, its replays none; the queue held one job per directive and per signal, each
succeeded; no answer to a tenant held another tenant's marker or ids; no tenant's rows, in any
tenant-owned table, hold another tenant's marker or ids.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tests.load_mix import Traffic
from tests.load_world import World

SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


async def _scalar(world: World, query: str, **params: object) -> int:
    async with world.services.db.admin() as conn:
        return int(await conn.scalar(sa.text(query), params) or 0)


async def _rows_of(world: World, query: str, **params: object) -> list[tuple[Any, ...]]:
    async with world.services.db.admin() as conn:
        return [tuple(row) for row in await conn.execute(sa.text(query), params)]


async def settle(world: World, timeout_s: float = SETTLE_TIMEOUT_S) -> float:
    """Wait until no directive is unfinished, no signal unprocessed, no queue job waiting; the seconds it took."""
    started = time.monotonic()
    tenants = [t.id for t in world.tenants]
    while time.monotonic() - started < timeout_s:
        open_directives = await _scalar(
            world,
            "SELECT count(*) FROM tenantgate.directives"
            " WHERE tenant_id = ANY(:t) AND status IN ('requested', 'running')",
            t=tenants,
        )
        open_signals = await _scalar(
            world,
            "SELECT count(*) FROM tenantgate.signals WHERE tenant_id = ANY(:t) AND processed_at IS NULL",
            t=tenants,
        )
        open_jobs = await _scalar(
            world,
            "SELECT count(*) FROM procrastinate.procrastinate_jobs"
            " WHERE args->>'tenant_id' = ANY(:t) AND status IN ('todo', 'doing')",
            t=[str(t) for t in tenants],
        )
        if open_directives == 0 and open_signals == 0 and open_jobs == 0:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def check(world: World, traffic: Traffic) -> list[Check]:
    """Every post-check, in order."""
    return [
        _answers(traffic),
        await _audit_events(world, traffic),
        await _chains(world),
        await _directives(world, traffic),
        await _signals(world, traffic),
        await _jobs(world, traffic),
        _responses(traffic),
        await _rows(world),
    ]


def _answers(traffic: Traffic) -> Check:
    wrong = [s for s in traffic.samples if not s.expected]
    examples = "; ".join(f"{s.op}: {s.note}" for s in wrong[:3])
    return Check(
        "every answer was the one it must be",
        not wrong and bool(traffic.samples),
        f"{len(traffic.samples)} operations, {len(wrong)} unexpected" + (f" ({examples})" if examples else ""),
    )


async def _audit_events(world: World, traffic: Traffic) -> Check:
    audited = [s for s in traffic.sent if s.audited]
    query = "SELECT request_id, tenant_id FROM tenantgate.audit_events WHERE request_id = ANY(:ids)"
    found: dict[str, set[uuid.UUID]] = {}
    for request_id, tenant_id in await _rows_of(world, query, ids=[s.request_id for s in audited]):
        found.setdefault(request_id, set()).add(tenant_id)
    missing = [s for s in audited if found.get(s.request_id) != {s.tenant_id}]
    accepted = sum(1 for s in audited if s.status < 400)
    return Check(
        "every audited request has its event in its own tenant's trail",
        not missing and bool(audited),
        f"{accepted} accepted + {len(audited) - accepted} refused requests, {len(missing)} without their event",
    )


async def _chains(world: World) -> Check:
    reports = [await world.services.audit.verify(t.id) for t in world.tenants]
    broken = [f"{r.tenant_id}: {r.reason}" for r in reports if not r.ok]
    return Check(
        "every tenant's audit chain verifies",
        not broken,
        f"{len(reports)} chains, {sum(r.events_checked for r in reports)} events"
        + (f"; broken: {broken[:3]}" if broken else ""),
    )


async def _directives(world: World, traffic: Traffic) -> Check:
    query = "SELECT id, tenant_id, tool, status FROM tenantgate.directives WHERE tenant_id = ANY(:t)"
    rows = await _rows_of(world, query, t=[t.id for t in world.tenants])
    statuses = Counter(status for *_, status in rows)
    charges = {row_id: tenant for row_id, tenant, tool, _ in rows if tool == "charge@v1"}
    effects = world.payments.effects
    problems = []
    if charges != traffic.directives:
        problems.append(f"{len(charges)} charge directives stored, {len(traffic.directives)} answered")
    if set(statuses) - {"succeeded"}:
        problems.append(f"statuses {dict(statuses)}")
    if sorted(effects) != sorted(str(d) for d in traffic.directives) or set(effects.values()) - {1}:
        problems.append(f"{sum(effects.values())} effects for {len(effects)} keys at the provider")
    return Check(
        "every directive is final and its effect happened exactly once",
        not problems and bool(traffic.directives),
        f"{len(rows)} directives ({dict(statuses)}), {len(effects)} charges at the provider"
        + (f"; {'; '.join(problems)}" if problems else ""),
    )


async def _signals(world: World, traffic: Traffic) -> Check:
    query = (
        "SELECT tenant_id, source_event_id, processed_at IS NOT NULL FROM tenantgate.signals WHERE tenant_id = ANY(:t)"
    )
    rows = await _rows_of(world, query, t=[t.id for t in world.tenants])
    stored: dict[uuid.UUID, list[str]] = {t.id: [] for t in world.tenants}
    for tenant_id, event_id, _ in rows:
        stored[tenant_id].append(event_id)
    unprocessed = sum(1 for *_, processed in rows if not processed)
    wrong = [t for t, ids in stored.items() if sorted(ids) != sorted(traffic.deliveries[t])]
    delivered = sum(len(ids) for ids in traffic.deliveries.values())
    return Check(
        "every accepted delivery is one processed signal, replays none",
        not wrong and not unprocessed and delivered > 0,
        f"{delivered} deliveries, {len(rows)} signals, {unprocessed} unprocessed, {len(wrong)} tenants differ",
    )


async def _jobs(world: World, traffic: Traffic) -> Check:
    query = (
        "SELECT task_name, status, args->>'directive_id', args->>'signal_id', worker_id"
        " FROM procrastinate.procrastinate_jobs WHERE args->>'tenant_id' = ANY(:t)"
    )
    rows = await _rows_of(world, query, t=[str(t.id) for t in world.tenants])
    statuses = Counter(status for _, status, *_ in rows)
    ran = Counter(directive for task, _, directive, _, _ in rows if task == "tenantgate.run_directive")
    processed = Counter(signal for task, _, _, signal, _ in rows if task == "tenantgate.process_signal")
    workers = {worker for *_, worker in rows if worker is not None}
    twice = [k for k, n in (ran + processed).items() if n != 1]
    expected_signals = sum(len(ids) for ids in traffic.deliveries.values())
    ok = set(statuses) == {"succeeded"} and not twice and set(ran) == {str(d) for d in traffic.directives}
    return Check(
        "the queue ran one job per directive and per signal, each to success",
        ok and len(processed) == expected_signals,
        f"{len(ran)} directive jobs, {len(processed)} signal jobs ({dict(statuses)}),"
        f" {len(twice)} queued more than once, {len(workers)} distinct worker ids recorded",
    )


def _responses(traffic: Traffic) -> Check:
    return Check(
        "no answer to a tenant held another tenant's marker or ids",
        not traffic.leaks,
        f"{len(traffic.sent)} answers searched, {len(traffic.leaks)} leaks"
        + (f" ({traffic.leaks[:2]})" if traffic.leaks else ""),
    )


async def _rows(world: World) -> Check:
    async with world.services.db.admin() as conn:
        names = (
            await conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.columns WHERE table_schema = 'tenantgate'"
                    " AND column_name = 'tenant_id' ORDER BY table_name"
                )
            )
        ).scalars()
        tables = [str(t) for t in names if re.fullmatch(r"[a-z_0-9]+", str(t))]
        leaks: list[str] = []
        scanned = 0
        for tenant in world.tenants:
            others = [o for o in world.tenants if o.id != tenant.id]
            pattern = "|".join(trace for o in others for trace in o.traces)
            for table in tables:
                row = (
                    await conn.execute(
                        sa.text(
                            f"SELECT count(*), count(*) FILTER (WHERE row_to_json(t)::text ~ :p)"
                            f" FROM tenantgate.{table} t WHERE t.tenant_id = :me"
                        ),
                        {"p": pattern, "me": tenant.id},
                    )
                ).one()
                scanned += row[0]
                if row[1]:
                    leaks.append(f"{table}: {row[1]} rows of {tenant.marker}")
    return Check(
        "no tenant's rows hold another tenant's marker or ids",
        not leaks and scanned > 0,
        f"{scanned} rows in {len(tables)} tenant-owned tables searched, {len(leaks)} leaks"
        + (f" ({leaks[:3]})" if leaks else ""),
    )
