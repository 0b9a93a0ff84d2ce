"""What callers hand the audit log (:class:`AuditEvent`) and what it stores (:class:`AuditRecord`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from tenantgate.audit._canonical import check_text, digest, json_safe, timestamp
from tenantgate.errors import InvalidInput

__all__ = ["DECISIONS", "AuditEvent", "AuditRecord"]

# Dotted, lowercase: ``auth.failed``, ``key.rotated``, ``confirmation.approved``. The set of
# actions is open (later issues add their own); the shape is not.
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
DECISIONS = frozenset({"allow", "deny", "confirm", "succeeded", "failed", "timeout"})


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, before the log gives it a place in a chain.

    ``payload`` must be plain JSON and already redacted: the log refuses anything else
    with InvalidInput when the event is built, and stores a read-only copy.
    """

    action: str
    decision: str | None = None
    code: str | None = None
    tool: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    # The payload's canonical JSON and its sha256, computed once here, by the caller.
    canonical_payload: str = field(init=False, repr=False, compare=False)
    payload_digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.action, str) or len(self.action) > 100 or not _ACTION.fullmatch(self.action):
            raise InvalidInput(f"An audit action is dotted lowercase words, like 'key.created', not {self.action!r}.")
        if self.decision is not None and self.decision not in DECISIONS:
            raise InvalidInput(f"An audit decision is one of {', '.join(sorted(DECISIONS))}, not {self.decision!r}.")
        for name in ("code", "tool"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise InvalidInput(f"The audit {name} must be text.")
                check_text(value, name, max_length=200)
        plain, canonical = json_safe(self.payload)
        object.__setattr__(self, "payload", MappingProxyType(plain))
        object.__setattr__(self, "canonical_payload", canonical)
        object.__setattr__(self, "payload_digest", digest(canonical))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored event: its place in its tenant's chain and the hashes that hold it there.

    ``payload`` is None once erased (``erased_at`` says when); the digest stays.
    """

    tenant_id: uuid.UUID
    seq: int
    occurred_at: datetime
    action: str
    decision: str | None
    code: str | None
    tool: str | None
    principal_id: uuid.UUID | None
    principal_kind: str | None
    acting_for: uuid.UUID | None
    request_id: str | None
    payload: Mapping[str, Any] | None
    payload_digest: bytes
    erased_at: datetime | None
    prev_hash: bytes
    hash: bytes

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (ids as text, times as UTC ISO, hashes as hex), as ``audit export`` writes."""
        return {
            "tenant_id": str(self.tenant_id),
            "seq": self.seq,
            "occurred_at": timestamp(self.occurred_at),
            "action": self.action,
            "decision": self.decision,
            "code": self.code,
            "tool": self.tool,
            "principal_id": None if self.principal_id is None else str(self.principal_id),
            "principal_kind": self.principal_kind,
            "acting_for": None if self.acting_for is None else str(self.acting_for),
            "request_id": self.request_id,
            "payload": None if self.payload is None else dict(self.payload),
            "payload_digest": self.payload_digest.hex(),
            "erased_at": None if self.erased_at is None else timestamp(self.erased_at),
            "prev_hash": self.prev_hash.hex(),
            "hash": self.hash.hex(),
        }
