"""Subscribers by signal type. Handlers must be idempotent: a replayed signal runs them again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.logs import get_logger
from tenantgate.signals._store import Signal, SignalStore
from tenantgate.signals._types import SIGNAL_TYPES, SignalTypeUnknown

__all__ = ["SignalBus", "SignalHandler"]

SignalHandler = Callable[[TenantContext, Signal], Awaitable[None]]
_log = get_logger("tenantgate.signals")


class SignalBus:
    """Runs each signal's subscribers (in the worker, or in-process without one)."""

    def __init__(self, *, store: SignalStore, mode: DeploymentMode) -> None:
        self.store = store
        self._mode = mode
        self._handlers: dict[str, list[SignalHandler]] = {}
        self._running: set[asyncio.Task[None]] = set()

    def subscribe(self, signal_type: str, handler: SignalHandler) -> None:
        if signal_type not in SIGNAL_TYPES:
            raise SignalTypeUnknown(f"No signal type {signal_type!r} to subscribe to.")
        self._handlers.setdefault(signal_type, []).append(handler)

    async def process(self, tenant_id: uuid.UUID, signal_id: uuid.UUID) -> None:
        """Run the subscribers of one signal as the tenant's system principal, then mark it processed."""
        ctx = system_context(tenant_id, mode=self._mode, request_id=f"signal:{signal_id}")
        signal = await self.store.get(ctx, signal_id)
        for handler in self._handlers.get(signal.type, []):
            await handler(ctx, signal)
        await self.store.mark_processed(ctx, signal_id)

    async def process_later(self, tenant_id: uuid.UUID, signal_id: uuid.UUID) -> None:
        """Without a worker: process in this process, after the caller has its answer."""
        task = asyncio.create_task(self._guarded(tenant_id, signal_id))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def drain(self) -> None:
        """Wait for in-process processing still running (at shutdown, and in tests)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _guarded(self, tenant_id: uuid.UUID, signal_id: uuid.UUID) -> None:
        try:
            await self.process(tenant_id, signal_id)
        except Exception as exc:  # noqa: BLE001 - a subscriber's failure is logged; the signal stays unprocessed
            _log.warning("signal.processing_failed", signal_id=str(signal_id), error_type=type(exc).__name__)
