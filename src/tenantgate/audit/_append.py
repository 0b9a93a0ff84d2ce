"""Appending to chains inside an open transaction: lock the head, seal, insert, move the head.

The head row lock (``SELECT ... FOR UPDATE`` on ``audit_heads``) is the one serialisation
point for a chain across every process: the head is read under the lock in every
transaction and never cached, so two writers can never both extend the same seq. The work
runs on the psycopg connection under the caller's SQLAlchemy transaction, in two round
trips: lock the head(s), then insert every event and move the head(s).

:func:`append_drafts` writes one chain and waits for its lock. :func:`append_many` writes
several tenants' chains in one transaction (one commit for all: see ``_group``), one tenant
at a time under that tenant's RLS policy, and never waits: a chain whose head another
transaction holds is skipped and handed back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.numeric import Int8

from tenantgate.audit._canonical import GENESIS
from tenantgate.audit._chain import Draft, seal
from tenantgate.audit._event import AuditRecord

__all__ = ["append_drafts", "append_many"]

# Evidence must survive a crash once the caller is told it was recorded, even on a server
# whose default trades durability for speed (synchronous_commit = off).
_DURABLE = "SELECT set_config('synchronous_commit', 'on', true)"
_LOCK_HEAD = "SELECT seq, hash FROM tenantgate.audit_heads WHERE tenant_id = %s FOR UPDATE"
_NEW_HEAD = "INSERT INTO tenantgate.audit_heads (tenant_id, seq, hash) VALUES (%s, 0, %s) ON CONFLICT DO NOTHING"
_INSERT = """
    INSERT INTO tenantgate.audit_events (
        tenant_id, seq, occurred_at, action, decision, code, tool, principal_id, principal_kind,
        acting_for, request_id, payload, payload_digest, prev_hash, hash
    ) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)
"""
_MOVE_HEAD = "UPDATE tenantgate.audit_heads SET seq = %s, hash = %s WHERE tenant_id = %s"
# Several chains at once, each under its own tenant's policy; a batch is one JSON document
# (migration 0002 documents its shape).
_LOCK_HEADS = "SELECT head_tenant, head_seq, head_hash FROM tenantgate.audit_lock_heads(%s::jsonb)"
_WRITE_MANY = "SELECT tenantgate.audit_write(%s::jsonb)"


async def _lock_head(driver: psycopg.AsyncConnection[Any], chain: uuid.UUID) -> tuple[int, bytes]:
    cursor = driver.cursor()
    async with driver.pipeline():
        await driver.execute(_DURABLE)
        await cursor.execute(_LOCK_HEAD, (chain,))
    row = await cursor.fetchone()
    if row is None:
        # The chain's first event: create its head (a concurrent creator wins harmlessly), then lock it.
        async with driver.pipeline():
            await driver.execute(_NEW_HEAD, (chain, GENESIS))
            await cursor.execute(_LOCK_HEAD, (chain,))
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), bytes(row[1])


async def append_drafts(
    driver: psycopg.AsyncConnection[Any], chain: uuid.UUID, drafts: Sequence[Draft]
) -> list[AuditRecord]:
    """Append ``drafts`` to ``chain`` in order, inside the open transaction; the sealed records.

    The transaction must be able to write ``chain``: the chain's tenant (RLS) or the admin role.
    Nothing is durable until that transaction commits; the head stays locked until then.
    """
    if any(d.tenant_id != chain for d in drafts):
        raise ValueError("every draft must belong to the chain it is appended to")
    if not drafts:
        return []
    head = await _lock_head(driver, chain)
    records = _seal_all(drafts, *head)
    async with driver.pipeline():
        await _write(driver, chain, drafts, records)
    return records


async def append_many(
    driver: psycopg.AsyncConnection[Any], batches: Mapping[uuid.UUID, Sequence[Draft]]
) -> tuple[dict[uuid.UUID, list[AuditRecord]], set[uuid.UUID]]:
    """Append to several tenant chains in the open app-role transaction; (written records, skipped chains).

    Two statements whatever the number of chains (``audit_lock_heads``, ``audit_write`` in
    migration 0002, one JSON parameter each), each entering one chain's tenant at a time,
    so every row still passes that tenant's RLS policy. Locks are taken only if free (SKIP LOCKED): the transaction
    never waits, so it cannot deadlock and one busy chain cannot stall the others. Skipped
    chains (head held elsewhere, or no head yet) are for :func:`append_drafts`.
    """
    for chain, drafts in batches.items():
        if not drafts or any(d.tenant_id != chain for d in drafts):
            raise ValueError("every chain needs drafts, and every draft must belong to its chain")
    cursor = driver.cursor()
    async with driver.pipeline():
        await driver.execute(_DURABLE)
        await cursor.execute(_LOCK_HEADS, (json.dumps([str(chain) for chain in batches]),))
    heads = {row[0]: (int(row[1]), bytes(row[2])) for row in await cursor.fetchall()}
    written = {chain: _seal_all(batches[chain], *head) for chain, head in heads.items()}
    if written:
        document = [
            [
                str(chain),
                records[-1].seq,
                records[-1].hash.hex(),
                [_row(r, d) for r, d in zip(records, batches[chain], strict=True)],
            ]
            for chain, records in written.items()
        ]
        await driver.execute(_WRITE_MANY, (json.dumps(document),))
    return written, set(batches) - set(heads)


def _row(r: AuditRecord, d: Draft) -> list[object]:
    """One event as ``audit_write`` reads it: text for ids and times, hex for bytes."""
    return [
        r.seq, r.occurred_at.isoformat(), r.action, r.decision, r.code, r.tool, _text(r.principal_id),
        r.principal_kind, _text(r.acting_for), r.request_id, d.event.canonical_payload, r.payload_digest.hex(),
        r.prev_hash.hex(), r.hash.hex(),
    ]  # fmt: skip


def _text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _seal_all(drafts: Sequence[Draft], seq: int, prev: bytes) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for draft in drafts:
        seq += 1
        record = seal(draft, seq, prev)
        records.append(record)
        prev = record.hash
    return records


async def _write(
    driver: psycopg.AsyncConnection[Any], chain: uuid.UUID, drafts: Sequence[Draft], records: Sequence[AuditRecord]
) -> None:
    """Queue the inserts and the head update (inside the caller's pipeline)."""
    rows = [
        (r.tenant_id, Int8(r.seq), r.occurred_at, r.action, r.decision, r.code, r.tool, r.principal_id,
         r.principal_kind, r.acting_for, r.request_id, d.event.canonical_payload, r.payload_digest, r.prev_hash,
         r.hash)
        for r, d in zip(records, drafts, strict=True)
    ]  # fmt: skip
    await driver.cursor().executemany(_INSERT, rows)
    await driver.execute(_MOVE_HEAD, (Int8(records[-1].seq), records[-1].hash, chain))
