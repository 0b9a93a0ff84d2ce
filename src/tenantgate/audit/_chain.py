"""Sealing events into a chain, and walking a stored chain to prove it whole.

Both sides compute the same link (``_canonical.link``) from the same columns: sealing
from the caller's event, verifying from what the database holds now.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tenantgate.audit._canonical import GENESIS, canonical_json, digest, header, link
from tenantgate.audit._event import AuditEvent, AuditRecord

__all__ = ["ChainReport", "ChainWalker", "Draft", "seal"]


@dataclass(frozen=True, slots=True)
class Draft:
    """An event with who and when, waiting for its place (seq, prev_hash) in a chain."""

    tenant_id: uuid.UUID
    occurred_at: datetime
    event: AuditEvent
    principal_id: uuid.UUID | None
    principal_kind: str | None
    acting_for: uuid.UUID | None
    request_id: str | None


def _link(r: AuditRecord | Draft, seq: int, prev_hash: bytes, payload_digest: bytes) -> bytes:
    event = r.event if isinstance(r, Draft) else r
    head = header(
        tenant_id=r.tenant_id, seq=seq, occurred_at=r.occurred_at, action=event.action, decision=event.decision,
        code=event.code, tool=event.tool, principal_id=r.principal_id, principal_kind=r.principal_kind,
        acting_for=r.acting_for, request_id=r.request_id,
    )  # fmt: skip
    return link(prev_hash, head, payload_digest)


def seal(draft: Draft, seq: int, prev_hash: bytes) -> AuditRecord:
    """The stored form of ``draft`` as event ``seq`` after the event whose hash is ``prev_hash``."""
    e = draft.event
    return AuditRecord(
        tenant_id=draft.tenant_id, seq=seq, occurred_at=draft.occurred_at, action=e.action, decision=e.decision,
        code=e.code, tool=e.tool, principal_id=draft.principal_id, principal_kind=draft.principal_kind,
        acting_for=draft.acting_for, request_id=draft.request_id, payload=e.payload,
        payload_digest=e.payload_digest, erased_at=None, prev_hash=prev_hash,
        hash=_link(draft, seq, prev_hash, e.payload_digest),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of verifying one chain: total, and explained when it is broken."""

    tenant_id: uuid.UUID
    ok: bool
    events_checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    # The head as stored: write it down elsewhere, and a later rewrite of the whole chain shows.
    head_seq: int = 0
    head_hash: bytes | None = None


class ChainWalker:
    """Feed it a chain's events in seq order; it stops believing at the first broken link."""

    def __init__(self, tenant_id: uuid.UUID) -> None:
        self.tenant_id = tenant_id
        self.checked = 0
        self.last_seq = 0
        self.last_hash = GENESIS
        self.broken: tuple[int, str] | None = None

    def feed(self, r: AuditRecord) -> bool:
        """Check one event; False (and ``broken`` set) at the first that does not hold."""
        expected = self.last_seq + 1
        problem = (
            f"event {expected} is missing (the next stored event is {r.seq})" if r.seq != expected
            else f"prev_hash does not match the hash of event {r.seq - 1}" if r.prev_hash != self.last_hash
            else self._content_problem(r)
        )  # fmt: skip
        if problem is not None:
            self.broken = (expected, problem)
            return False
        self.checked += 1
        self.last_seq, self.last_hash = r.seq, r.hash
        return True

    def _content_problem(self, r: AuditRecord) -> str | None:
        if _link(r, r.seq, r.prev_hash, r.payload_digest) != r.hash:
            return "the event's fields do not match its hash (modified, or moved from another seq)"
        if r.payload is not None and digest(canonical_json(r.payload)) != r.payload_digest:
            return "the payload does not match its digest (modified)"
        if r.payload is None and r.erased_at is None:
            return "the payload is gone but was never erased"
        return None

    def report(self, head: tuple[int, bytes] | None) -> ChainReport:
        """The verdict, given the stored head (None if the chain has no head row)."""
        head_seq, head_hash = head if head is not None else (0, None)
        if self.broken is None and head is None and self.checked:
            self.broken = (1, "the chain head is missing")
        elif self.broken is None and head_seq > self.last_seq:
            self.broken = (self.last_seq + 1, f"events {self.last_seq + 1}..{head_seq} were removed from the end")
        elif self.broken is None and head_seq < self.last_seq:
            self.broken = (head_seq + 1, f"events after {head_seq} are not covered by the chain head")
        elif self.broken is None and (head_hash or GENESIS) != self.last_hash:
            self.broken = (head_seq, f"event {head_seq} does not match the chain head's hash (rewritten)")
        if self.broken is None:
            return ChainReport(self.tenant_id, True, self.checked, head_seq=head_seq, head_hash=head_hash)
        seq, reason = self.broken
        return ChainReport(self.tenant_id, False, self.checked, seq, reason, head_seq=head_seq, head_hash=head_hash)
