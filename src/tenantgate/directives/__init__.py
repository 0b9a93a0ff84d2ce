"""Directives: side effects recorded before they happen, run once per idempotency key."""

from tenantgate.directives._queue import QUEUE, QUEUE_SCHEMA, DirectiveQueue, WorkerTiming
from tenantgate.directives._store import (
    Directive,
    DirectiveNotFound,
    DirectiveStatus,
    DirectiveStore,
    IdempotencyConflict,
)

__all__ = [
    "QUEUE",
    "QUEUE_SCHEMA",
    "Directive",
    "DirectiveNotFound",
    "DirectiveQueue",
    "DirectiveStatus",
    "DirectiveStore",
    "IdempotencyConflict",
    "WorkerTiming",
]
