"""Concurrent appends: group commit inside one log, and the head lock between logs (as between processes)."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from tenantgate.audit import AuditEvent, AuditLog, AuditRecord
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.installation import Installation, Services
from tests.conftest import DatabaseFixture


def fresh_chain(services: Services) -> TenantContext:
    return system_context(uuid.uuid4(), mode=services.settings.mode, request_id="test-audit-concurrency")


def transactions_behind(test_db: DatabaseFixture, tenant_id: uuid.UUID) -> int:
    """How many transactions wrote the chain's events: rows inserted together share their xmin."""
    with psycopg.connect(test_db.superuser) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM tenantgate.audit_events WHERE tenant_id = %s", [tenant_id]
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_concurrent_records_for_one_tenant_get_contiguous_seqs_in_few_transactions(
    services: Services, test_db: DatabaseFixture
) -> None:
    ctx = fresh_chain(services)
    n = 64
    records = await asyncio.gather(
        *(services.audit.record(ctx, AuditEvent("gate.decided", decision="allow", payload={"i": i})) for i in range(n))
    )
    assert sorted(r.seq for r in records) == list(range(1, n + 1))
    # Each caller got its own event back, in the order it asked.
    assert [r.payload["i"] for r in sorted(records, key=lambda r: r.seq) if r.payload is not None] == list(range(n))
    report = await services.audit.verify(ctx.tenant_id)
    assert (report.ok, report.events_checked) == (True, n)
    assert transactions_behind(test_db, ctx.tenant_id) < n / 4  # grouped, not one commit each


async def test_two_logs_on_separate_pools_appending_at_once_keep_one_chain(
    services: Services, installation: Installation, test_db: DatabaseFixture
) -> None:
    """Two AuditLog instances with their own connection pools stand in for two processes."""
    other_db = installation.database()
    other = AuditLog(db=other_db)
    ctx = fresh_chain(services)
    try:

        async def in_a_transaction(i: int) -> AuditRecord:
            async with services.db.tenant(ctx) as conn:
                return await services.audit.append(conn, ctx, AuditEvent("key.created", payload={"i": i}))

        calls = [
            call
            for i in range(30)
            for call in (
                services.audit.record(ctx, AuditEvent("tool.executed", payload={"log": "first", "i": i})),
                other.record(ctx, AuditEvent("tool.executed", payload={"log": "second", "i": i})),
                other.record_as(ctx.tenant_id, AuditEvent("auth.failed", decision="failed")),
                in_a_transaction(i),
            )
        ]
        records = await asyncio.gather(*calls)
    finally:
        await other_db.dispose()
    assert sorted(r.seq for r in records) == list(range(1, len(calls) + 1))
    report = await services.audit.verify(ctx.tenant_id)
    assert (report.ok, report.events_checked, report.head_seq) == (True, len(calls), len(calls))


async def test_tenants_are_separate_chains_written_side_by_side(services: Services) -> None:
    tenants = [fresh_chain(services) for _ in range(8)]
    await asyncio.gather(
        *(
            services.audit.record(ctx, AuditEvent("tool.executed", payload={"i": i}))
            for i in range(10)
            for ctx in tenants
        )
    )
    for ctx in tenants:
        report = await services.audit.verify(ctx.tenant_id)
        assert (report.ok, report.events_checked) == (True, 10)
        assert {r.tenant_id for r in await services.audit.page(ctx)} == {ctx.tenant_id}


async def test_a_caller_that_gives_up_does_not_break_the_batch(services: Services) -> None:
    ctx = fresh_chain(services)
    waiting = [
        asyncio.ensure_future(services.audit.record(ctx, AuditEvent("tool.executed", payload={"i": i})))
        for i in range(10)
    ]
    await asyncio.sleep(0)
    waiting[3].cancel()
    done = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert all(isinstance(r, AuditRecord) for i, r in enumerate(done) if i != 3)
    # The cancelled caller's event may or may not have made it; the chain is whole either way.
    report = await services.audit.verify(ctx.tenant_id)
    assert report.ok
    assert report.events_checked in (9, 10)
