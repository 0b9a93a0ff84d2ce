"""The audit chain on the real database: what it stores, what it refuses, and every kind of tampering it catches.

Tampering runs as the database owner (subject to FORCE RLS, so it names the tenant
first): the role that could rewrite rows behind the app's back. Each test uses a chain of
its own, so a broken chain here never shows up in another test.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tenantgate.audit import GENESIS, PLATFORM_CHAIN, AuditEvent, AuditLog, AuditRecord
from tenantgate.auth import Authenticator, system_context
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.errors import DatabaseUnavailable, InvalidInput, NotFound, RoleRequired
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.store import Database
from tests.conftest import DatabaseFixture, TenantFixture

SET_TENANT = "SELECT set_config('tenantgate.tenant_id', %s, true)"


def fresh_chain(services: Services) -> TenantContext:
    """A context for a tenant id no other test uses: its chain starts at seq 1."""
    return system_context(uuid.uuid4(), mode=services.settings.mode, request_id="test-audit")


async def chain_of(services: Services, ctx: TenantContext, n: int) -> list[AuditRecord]:
    return [
        await services.audit.record(ctx, AuditEvent("tool.executed", decision="succeeded", tool="t", payload={"i": i}))
        for i in range(1, n + 1)
    ]


@contextmanager
def as_owner(test_db: DatabaseFixture, tenant_id: uuid.UUID) -> Iterator[psycopg.Connection[Any]]:
    """One committed transaction as the schema owner, inside ``tenant_id`` (FORCE RLS binds the owner too)."""
    with psycopg.connect(test_db.urls.owner) as conn:
        conn.execute(SET_TENANT, [str(tenant_id)])
        yield conn


def tamper(test_db: DatabaseFixture, ctx: TenantContext, statement: str) -> None:
    """Run one statement (its only parameter: the tenant id) as the owner, inside ``ctx``'s tenant."""
    with as_owner(test_db, ctx.tenant_id) as conn:
        conn.execute(statement, [ctx.tenant_id])  # type: ignore[call-overload]  # a test's own SQL text


def spec_hash(r: AuditRecord) -> bytes:
    """The documented link, computed independently of tenantgate's own code."""
    header = {
        "tenant_id": str(r.tenant_id), "seq": r.seq,
        "occurred_at": r.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": r.action, "decision": r.decision, "code": r.code, "tool": r.tool,
        "principal_id": str(r.principal_id) if r.principal_id else None, "principal_kind": r.principal_kind,
        "acting_for": str(r.acting_for) if r.acting_for else None, "request_id": r.request_id,
    }  # fmt: skip
    canonical = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(r.prev_hash + canonical + r.payload_digest).digest()


# --- what is stored ---------------------------------------------------------------------------


async def test_records_form_a_chain_from_genesis_that_follows_the_documented_format(services: Services) -> None:
    ctx = fresh_chain(services)
    records = await chain_of(services, ctx, 3)
    async with services.db.tenant(ctx) as conn:
        records.append(await services.audit.append(conn, ctx, AuditEvent("policy.changed", payload={"v": 2})))
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash
    for r in records:
        assert r.hash == spec_hash(r)
        canonical = json.dumps(dict(r.payload or {}), sort_keys=True, separators=(",", ":")).encode()
        assert r.payload_digest == hashlib.sha256(canonical).digest()
        assert (r.principal_id, r.principal_kind, r.request_id) == (ctx.principal_id, "system", "test-audit")
    report = await services.audit.verify(ctx.tenant_id)
    assert (report.ok, report.events_checked, report.head_seq, report.head_hash) == (True, 4, 4, records[-1].hash)
    assert await services.audit.page(ctx) == records


async def test_record_is_durable_when_it_returns(services: Services, test_db: DatabaseFixture) -> None:
    ctx = fresh_chain(services)
    record = await services.audit.record(ctx, AuditEvent("gate.decided", decision="deny", code="policy_denied"))
    with psycopg.connect(test_db.superuser) as other:  # another session sees it: committed
        row = other.execute(
            "SELECT action, decision, code, hash FROM tenantgate.audit_events WHERE tenant_id = %s AND seq = 1",
            [ctx.tenant_id],
        ).fetchone()
    assert row == ("gate.decided", "deny", "policy_denied", record.hash)


async def test_an_append_rolls_back_with_the_change_it_describes(services: Services) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 1)

    async def change_that_fails() -> None:
        async with services.db.tenant(ctx) as conn:
            await services.audit.append(conn, ctx, AuditEvent("key.created", payload={"key_id": "k"}))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        await change_that_fails()
    assert [r.action for r in await services.audit.page(ctx)] == ["tool.executed"]
    next_one = await services.audit.record(ctx, AuditEvent("key.created"))
    assert next_one.seq == 2  # the rolled-back append took no seq
    assert (await services.audit.verify(ctx.tenant_id)).ok


async def test_payloads_that_jsonb_would_change_still_verify(services: Services) -> None:
    ctx = fresh_chain(services)
    payload = {
        "big_float": 1e20, "negative_zero": -0.0, "small": 1e-7, "tenth": 0.1, "huge_int": 2**70,
        "text": "é 😀 \u2028 \"quoted\"", "nested": {"b": [1, 2.5, None, True], "a": ("tuple", "becomes", "list")},
        "": "empty key",
    }  # fmt: skip
    record = await services.audit.record(ctx, AuditEvent("tool.executed", payload=payload))
    assert record.payload is not None
    assert record.payload["big_float"] == 10**20
    assert record.payload["nested"]["a"] == ["tuple", "becomes", "list"]
    assert (await services.audit.verify(ctx.tenant_id)).ok
    (stored,) = await services.audit.page(ctx)
    assert stored.payload == record.payload


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "Key Created"}, "dotted lowercase"),
        ({"action": "created"}, "dotted lowercase"),
        ({"action": "key.created", "decision": "maybe"}, "decision"),
        ({"action": "key.created", "code": "a\x00b"}, "NUL"),
        ({"action": "key.created", "payload": {"at": datetime.now(UTC)}}, "datetime"),
        ({"action": "key.created", "payload": {"id": uuid.uuid4()}}, "UUID"),
        ({"action": "key.created", "payload": {"raw": b"bytes"}}, "bytes"),
        ({"action": "key.created", "payload": {"tags": {"a"}}}, "set"),
        ({"action": "key.created", "payload": {"x": float("nan")}}, "non-finite"),
        ({"action": "key.created", "payload": {1: "int key"}}, "non-text key"),
        ({"action": "key.created", "payload": {"s": "\ud800"}}, "Unicode"),
        ({"action": "key.created", "payload": {"s": "x" * 70_000}}, "longer than|larger than"),
        ({"action": "key.created", "payload": ["not", "a", "mapping"]}, "mapping"),
    ],
)
def test_events_that_are_not_plain_json_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AuditEvent(**kwargs)


def test_an_event_keeps_a_private_copy_of_its_payload() -> None:
    payload: dict[str, Any] = {"roles": ["owner"]}
    event = AuditEvent("key.created", payload=payload)
    payload["roles"].append("admin")
    payload["late"] = True
    assert dict(event.payload) == {"roles": ["owner"]}
    with pytest.raises(TypeError):
        event.payload["x"] = 1  # type: ignore[index]


# --- who may write and read --------------------------------------------------------------------


async def test_the_app_role_can_insert_and_read_but_never_change_or_remove_events(
    services: Services, test_db: DatabaseFixture
) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 2)
    for statement in (
        "UPDATE tenantgate.audit_events SET code = 'x' WHERE tenant_id = %s",
        "DELETE FROM tenantgate.audit_events WHERE tenant_id = %s",
        "TRUNCATE tenantgate.audit_events",
    ):
        with psycopg.connect(test_db.urls.app) as conn:
            conn.execute(SET_TENANT, [str(ctx.tenant_id)])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, [ctx.tenant_id] if "%s" in statement else [])
    with psycopg.connect(test_db.urls.app) as conn:
        conn.execute(SET_TENANT, [str(ctx.tenant_id)])
        count = conn.execute("SELECT count(*) FROM tenantgate.audit_events WHERE tenant_id = %s", [ctx.tenant_id])
        assert count.fetchone() == (2,)
        # Another tenant's chain is invisible, and cannot be written from here.
        assert conn.execute("SELECT count(*) FROM tenantgate.audit_events").fetchone() == (2,)
    assert (await services.audit.verify(ctx.tenant_id)).ok


async def test_only_owners_and_admins_page_and_pages_are_bounded(services: Services, tenant_a: TenantFixture) -> None:
    member = TenantContext(
        tenant_id=tenant_a.id, principal_id=uuid.uuid4(), kind=PrincipalKind.USER,
        roles=frozenset({Role.MEMBER}), mode=services.settings.mode, request_id="t",
    )  # fmt: skip
    with pytest.raises(RoleRequired):
        await services.audit.page(member)
    with pytest.raises(InvalidInput, match="limit"):
        await services.audit.page(tenant_a.system, limit=501)
    with pytest.raises(InvalidInput, match="time zone"):
        await services.audit.page(tenant_a.system, since=datetime(2025, 1, 1))  # noqa: DTZ001 - the point


async def test_platform_events_go_only_through_the_platform_chain(services: Services) -> None:
    with pytest.raises(InvalidInput, match="record_platform"):
        await services.audit.record_as(PLATFORM_CHAIN, AuditEvent("test.platform_event"))
    record = await services.audit.record_platform(AuditEvent("test.platform_event"), request_id="r-1")
    assert record.tenant_id == PLATFORM_CHAIN
    assert (await services.audit.verify(PLATFORM_CHAIN)).ok


# --- tampering -------------------------------------------------------------------------------


async def _broken(services: Services, ctx: TenantContext) -> tuple[int | None, str]:
    report = await services.audit.verify(ctx.tenant_id)
    assert not report.ok
    assert report.reason is not None
    return report.first_broken_seq, report.reason


async def test_a_modified_field_breaks_the_chain_at_that_event(services: Services, test_db: DatabaseFixture) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 6)
    tamper(test_db, ctx, "UPDATE tenantgate.audit_events SET decision = 'failed' WHERE tenant_id = %s AND seq = 3")
    seq, reason = await _broken(services, ctx)
    assert seq == 3
    assert "do not match its hash" in reason


async def test_a_modified_payload_breaks_the_chain_at_that_event(services: Services, test_db: DatabaseFixture) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 6)
    with as_owner(test_db, ctx.tenant_id) as conn:
        conn.execute(
            "UPDATE tenantgate.audit_events SET payload = '{\"i\": 99}' WHERE tenant_id = %s AND seq = 4",
            [ctx.tenant_id],
        )
    assert await _broken(services, ctx) == (4, "the payload does not match its digest (modified)")


async def test_a_deleted_event_breaks_the_chain_where_it_was(services: Services, test_db: DatabaseFixture) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 6)
    with as_owner(test_db, ctx.tenant_id) as conn:
        conn.execute("DELETE FROM tenantgate.audit_events WHERE tenant_id = %s AND seq = 3", [ctx.tenant_id])
    seq, reason = await _broken(services, ctx)
    assert seq == 3
    assert "event 3 is missing" in reason


async def test_a_deleted_last_event_is_caught_by_the_head(services: Services, test_db: DatabaseFixture) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 6)
    with as_owner(test_db, ctx.tenant_id) as conn:
        conn.execute("DELETE FROM tenantgate.audit_events WHERE tenant_id = %s AND seq = 6", [ctx.tenant_id])
    seq, reason = await _broken(services, ctx)
    assert seq == 6
    assert "removed from the end" in reason


async def test_swapped_events_break_the_chain_at_the_first_of_them(
    services: Services, test_db: DatabaseFixture
) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 6)
    with as_owner(test_db, ctx.tenant_id) as conn:
        swap = "UPDATE tenantgate.audit_events SET seq = %s WHERE tenant_id = %s AND seq = %s"
        conn.execute(swap, [100, ctx.tenant_id, 2])
        conn.execute(swap, [2, ctx.tenant_id, 4])
        conn.execute(swap, [4, ctx.tenant_id, 100])
    seq, reason = await _broken(services, ctx)
    assert seq == 2
    assert "prev_hash" in reason


async def test_a_forged_event_inserted_in_the_middle_breaks_the_chain(
    services: Services, test_db: DatabaseFixture
) -> None:
    ctx = fresh_chain(services)
    records = await chain_of(services, ctx, 6)
    # A careful forger: shifts events 4.. up by one and inserts a well-formed event 4 that
    # links correctly to event 3. The event after it still names event 3 as its parent.
    forged = AuditRecord(
        tenant_id=ctx.tenant_id, seq=4, occurred_at=records[2].occurred_at + timedelta(microseconds=1),
        action="key.revoked", decision=None, code=None, tool=None, principal_id=None, principal_kind=None,
        acting_for=None, request_id=None, payload={}, payload_digest=hashlib.sha256(b"{}").digest(),
        erased_at=None, prev_hash=records[2].hash, hash=b"",
    )  # fmt: skip
    with as_owner(test_db, ctx.tenant_id) as conn:
        shift = "UPDATE tenantgate.audit_events SET seq = seq + %s WHERE tenant_id = %s AND seq >= %s"
        conn.execute(shift, [1000, ctx.tenant_id, 4])
        conn.execute(shift, [-999, ctx.tenant_id, 1000])
        conn.execute(
            "INSERT INTO tenantgate.audit_events (tenant_id, seq, occurred_at, action, payload, payload_digest,"
            " prev_hash, hash) VALUES (%s, 4, %s, 'key.revoked', '{}', %s, %s, %s)",
            [ctx.tenant_id, forged.occurred_at, forged.payload_digest, forged.prev_hash, spec_hash(forged)],
        )
    seq, reason = await _broken(services, ctx)
    assert seq == 5  # the forgery itself links; the genuine event after it does not
    assert "prev_hash" in reason


async def test_a_careless_forgery_is_caught_at_itself(services: Services, test_db: DatabaseFixture) -> None:
    ctx = fresh_chain(services)
    records = await chain_of(services, ctx, 3)
    with as_owner(test_db, ctx.tenant_id) as conn:
        conn.execute("UPDATE tenantgate.audit_events SET seq = 4 WHERE tenant_id = %s AND seq = 3", [ctx.tenant_id])
        conn.execute(
            "INSERT INTO tenantgate.audit_events (tenant_id, seq, occurred_at, action, payload_digest, prev_hash,"
            " hash) VALUES (%s, 3, now(), 'key.revoked', %s, %s, %s)",
            [ctx.tenant_id, bytes(32), records[1].hash, bytes(32)],
        )
    seq, reason = await _broken(services, ctx)
    assert seq == 3
    assert "do not match its hash" in reason


async def test_a_payload_removed_without_erasure_or_a_rewritten_head_is_caught(
    services: Services, test_db: DatabaseFixture
) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 3)
    tamper(test_db, ctx, "UPDATE tenantgate.audit_events SET payload = NULL WHERE tenant_id = %s AND seq = 2")
    assert await _broken(services, ctx) == (2, "the payload is gone but was never erased")

    other = fresh_chain(services)
    await chain_of(services, other, 3)
    with as_owner(test_db, other.tenant_id) as conn:
        conn.execute("UPDATE tenantgate.audit_heads SET hash = %s WHERE tenant_id = %s", [bytes(32), other.tenant_id])
    seq, reason = await _broken(services, other)
    assert seq == 3
    assert "head" in reason


# --- erasure -----------------------------------------------------------------------------------


async def test_an_erased_payload_keeps_the_chain_verifying(services: Services) -> None:
    ctx = fresh_chain(services)
    await chain_of(services, ctx, 4)
    await services.audit.erase_payload(ctx.tenant_id, 2, request_id="erase-1")
    await services.audit.erase_payload(ctx.tenant_id, 2)  # again: nothing changes
    report = await services.audit.verify(ctx.tenant_id)
    assert (report.ok, report.events_checked) == (True, 4)

    exported = [e async for e in services.audit.export(ctx.tenant_id)]
    assert [e["seq"] for e in exported] == [1, 2, 3, 4]
    assert exported[1]["payload"] is None
    assert exported[1]["erased_at"] is not None
    assert [e["payload"] for e in exported if e["seq"] != 2] == [{"i": 1}, {"i": 3}, {"i": 4}]
    assert exported[1]["payload_digest"] == hashlib.sha256(b'{"i":2}').hexdigest()

    # The erasure is itself on the record: which event, never what it held.
    platform = [e async for e in services.audit.export(PLATFORM_CHAIN) if e["request_id"] == "erase-1"]
    assert [(e["action"], e["payload"]) for e in platform] == [
        ("audit.payload_erased", {"tenant_id": str(ctx.tenant_id), "seq": 2})
    ]
    with pytest.raises(NotFound):
        await services.audit.erase_payload(ctx.tenant_id, 99)


async def test_export_since_starts_at_a_time(services: Services) -> None:
    times = iter([datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(3)])
    log = AuditLog(db=services.db, clock=lambda: next(times))
    ctx = fresh_chain(services)
    for _ in range(3):
        await log.record(ctx, AuditEvent("tool.executed"))
    since = datetime(2030, 1, 2, tzinfo=UTC)
    assert [e["seq"] async for e in services.audit.export(ctx.tenant_id, since=since)] == [2, 3]
    exported = [e async for e in services.audit.export(ctx.tenant_id)]
    assert exported[0]["occurred_at"] == "2030-01-01T00:00:00.000000Z"
    window = await services.audit.page(ctx, since=since, until=datetime(2030, 1, 3, tzinfo=UTC))
    assert [r.seq for r in window] == [2]


# --- failing closed ----------------------------------------------------------------------------


def _dead_database(services: Services) -> Database:
    dead = "postgresql://nobody@127.0.0.1:1/nothing"
    return Database(app_url=dead, admin_url=dead, roles=services.db.roles)


async def test_an_unreachable_database_refuses_the_record(services: Services) -> None:
    log = AuditLog(db=_dead_database(services))
    with pytest.raises(DatabaseUnavailable):
        await log.record(fresh_chain(services), AuditEvent("gate.decided", decision="allow"))
    with pytest.raises(DatabaseUnavailable):
        await log.record_platform(AuditEvent("tenant.created"))


async def test_a_lost_access_event_is_logged_loudly(
    services: Services, installation: Installation, tenant_a: TenantFixture
) -> None:
    # Authentication events do not hold the request for their commit (what the request then
    # does is audited before it answers, and fails closed: see the test above). A write that
    # cannot happen is an error in the log, never silence.
    dead_log = AuditLog(db=_dead_database(services))
    dead_audit = Authenticator(db=services.db, pepper=installation.pepper, mode=services.settings.mode, audit=dead_log)
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        ctx = await dead_audit.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")
        await dead_log.drain()
    finally:
        configure_logging("warning")
    assert ctx.tenant_id == tenant_a.id
    lost = [json.loads(line) for line in stream.getvalue().splitlines() if "audit.write_lost" in line]
    assert [(e["level"], e["error"]) for e in lost] == [("error", "DatabaseUnavailable")]


def test_the_public_surface_is_exactly_all() -> None:
    import tenantgate.audit

    public = {name for name in vars(tenantgate.audit) if not name.startswith("_")}
    assert public == set(tenantgate.audit.__all__)
