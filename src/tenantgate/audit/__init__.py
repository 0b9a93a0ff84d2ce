"""The tamper-evident audit log: append-only, hash-chained per tenant, with erasable payloads.

Each tenant has one chain; platform events (no tenant) have their own, ``PLATFORM_CHAIN``.
Every event links to the one before it by ``sha256(prev_hash || header || payload_digest)``,
so a modified, deleted, reordered or inserted event breaks the chain from that seq on,
while an erased payload (digest kept) does not. ``AuditLog.verify`` walks a chain and says
where it breaks; ``tenantgate audit verify`` runs it for every chain.
"""

from tenantgate.audit._canonical import GENESIS, MAX_PAYLOAD_BYTES, PLATFORM_CHAIN
from tenantgate.audit._chain import ChainReport
from tenantgate.audit._event import DECISIONS, AuditEvent, AuditRecord
from tenantgate.audit._log import MAX_PAGE, AuditLog, AuditObserver

__all__ = [
    "DECISIONS",
    "GENESIS",
    "MAX_PAGE",
    "MAX_PAYLOAD_BYTES",
    "PLATFORM_CHAIN",
    "AuditEvent",
    "AuditLog",
    "AuditObserver",
    "AuditRecord",
    "ChainReport",
]
