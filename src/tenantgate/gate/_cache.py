"""Compiled tenant views in memory, kept current across processes with LISTEN/NOTIFY.

The promise: a change committed in any process reaches every process's decisions within
``max_staleness`` (one second), or those decisions are denied. A listener that cannot
prove its connection alive for longer than that makes every view *unavailable* (the gate
then denies with ``policy_unavailable``) until it has reconnected and forgotten what it
may have missed. A stale cache never allows what the database now forbids.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import psycopg

from tenantgate.context import TenantContext
from tenantgate.errors import TenantgateError
from tenantgate.gate._compiled import Switches, TenantView
from tenantgate.gate._store import CHANNEL, PLATFORM, PolicyStore
from tenantgate.logs import get_logger

__all__ = ["PolicyCache", "PolicyUnavailable"]

_log = get_logger("tenantgate.gate.cache")
_CYCLE_S = 0.25  # how often the listener proves its connection alive
LISTENER_NAME = "tenantgate-policy-listener"


class PolicyUnavailable(TenantgateError):
    """Policy state cannot be trusted to be current; decisions are denied until it can."""

    code = "policy_unavailable"


class PolicyCache:
    def __init__(
        self,
        *,
        store: PolicyStore,
        listen_url: str,
        max_staleness: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._listen_url = listen_url
        self._max_staleness = max_staleness
        self._clock = clock
        self._views: dict[uuid.UUID, TenantView] = {}
        self._generations: dict[uuid.UUID, int] = {}
        self._platform: Switches | None = None
        self._healthy_at = -float("inf")
        self._platform_stale = False
        self._alive = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        store.on_change(self._apply)

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Start listening; wait (briefly) for the first healthy cycle. Decisions deny until then."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="tenantgate-policy-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._alive.wait(), wait_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._forget_all()

    def fresh(self) -> bool:
        return self._clock() - self._healthy_at <= self._max_staleness

    async def view(self, ctx: TenantContext) -> TenantView:
        await self._ensure_fresh()
        tenant = ctx.tenant_id
        cached = self._views.get(tenant)
        if cached is not None:
            return cached
        generation = self._generations.get(tenant, 0)
        view = await self._store.load_view(ctx)
        # A change that arrived while we were loading may not be in what we loaded: use it
        # for this decision only if nothing changed, and never keep it.
        if self._generations.get(tenant, 0) == generation and self.fresh():
            self._views[tenant] = view
        return view

    async def platform(self) -> Switches:
        await self._ensure_fresh()
        if self._platform_stale or self._platform is None:
            self._platform_stale = False
            self._platform = await self._store.load_platform()
        return self._platform

    def _apply(self, payload: str) -> None:
        """A change happened (notified, or committed by this process): forget what it touched."""
        if payload == PLATFORM:
            self._platform_stale = True
        else:
            self._forget(uuid.UUID(payload))

    async def _ensure_fresh(self) -> None:
        if self.fresh():
            return
        # The listener may only be late (a busy event loop): give it one cycle to prove itself.
        self._alive.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._alive.wait(), self._max_staleness)
        if not self.fresh():
            raise PolicyUnavailable("Policy changes cannot be received right now; denied until they can.")

    def _forget(self, tenant: uuid.UUID) -> None:
        self._generations[tenant] = self._generations.get(tenant, 0) + 1
        self._views.pop(tenant, None)

    def _forget_all(self) -> None:
        for tenant in list(self._generations) + list(self._views):
            self._forget(tenant)
        self._platform = None
        self._healthy_at = -float("inf")

    def _healthy(self) -> None:
        self._healthy_at = self._clock()
        self._alive.set()

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            try:
                connect = psycopg.AsyncConnection.connect(
                    self._listen_url, autocommit=True, application_name=LISTENER_NAME, connect_timeout=5
                )
                async with await connect as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    # Anything cached before LISTEN took effect may have missed a notification.
                    self._forget_all()
                    self._platform = await self._store.load_platform()
                    self._healthy()
                    backoff = 0.1
                    while True:
                        async for note in conn.notifies(timeout=_CYCLE_S):
                            self._apply(note.payload)
                        await conn.execute("SELECT 1")  # the connection is alive, so nothing was missed
                        self._healthy()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any listener fault: forget everything, reconnect
                _log.warning("policy_listener.lost", error=type(exc).__name__, retry_in_s=backoff)
                self._forget_all()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
