"""The alerts service: an audit observer that counts rule windows, raises alerts, responds, notifies.

:meth:`Alerts.observe` is registered with the audit log (``AuditLog.observe``) and sees
every tenant record once it has committed: the live stream of decisions and events,
whichever process or edge produced them. Counting is a hit on the window storage; only a
window that reaches its threshold touches the database (the alert insert, unique per rule
window). An enabled automatic response runs at once, before the request that tripped it
returns; notifications run in the background (:meth:`drain` waits for them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenantgate.alerts._detector import WindowCounter, window_start
from tenantgate.alerts._notify import Notifier
from tenantgate.alerts._rules import AlertSettings, Rule, RuleSettings, matches
from tenantgate.alerts._store import AlertInfo, AlertStore, Finding
from tenantgate.audit import PLATFORM_CHAIN, AuditRecord
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger

__all__ = ["Alerts", "Responses"]

_log = get_logger("tenantgate.alerts")

_WHAT: dict[Rule, str] = {
    Rule.DENIAL_SPIKE_TENANT: "gate denials for the tenant",
    Rule.DENIAL_SPIKE_PRINCIPAL: "gate denials for one principal",
    Rule.FORBIDDEN_TOOL: "attempts at tools that do not exist in this mode",
    Rule.CONFIRMATION_IGNORED: "calls that needed a human's confirmation",
    Rule.IDEMPOTENCY_CONFLICT: "idempotency keys reused for another call",
    Rule.WEBHOOK_FAILURES: "webhook deliveries that failed verification",
    Rule.BUDGET_BURN: "tool calls executed",
    Rule.AUTH_FAILURES: "refused credentials",
}


@dataclass(frozen=True, slots=True)
class Responses:
    """Automatic responses, through the existing services (the installation wires them).

    ``pause_ai(ctx, reason)`` sets the tenant's ``ai`` kill switch; ``revoke_key(ctx, prefix,
    reason)`` revokes the tenant's key with that prefix. Each returns what it did, for the alert.
    """

    pause_ai: Callable[[TenantContext, str], Awaitable[str]] | None = None
    revoke_key: Callable[[TenantContext, str, str], Awaitable[str]] | None = None


class Alerts:
    def __init__(
        self,
        *,
        store: AlertStore,
        counter: WindowCounter,
        notifier: Notifier,
        mode: DeploymentMode,
        responses: Responses = Responses(),
        settings_ttl_s: float = 5.0,
        on_raised: Callable[[AlertInfo], None] | None = None,
    ) -> None:
        self.store = store
        self._counter = counter
        self._notifier = notifier
        self._mode = mode
        self._responses = responses
        self._ttl = settings_ttl_s
        self._on_raised = on_raised
        # Per tenant: until when, the settings, and every rule's effective settings (merged once).
        self._cache: dict[uuid.UUID, tuple[float, AlertSettings, dict[Rule, RuleSettings]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # The clock windows are counted by: epoch seconds. Tests may set it to step across windows.
        self.clock: Callable[[], float] = time.time

    # --- the audit observer ------------------------------------------------------------------

    async def observe(self, record: AuditRecord) -> None:
        """Count ``record`` for every rule it matches; raise an alert when a window reaches its threshold."""
        if record.tenant_id == PLATFORM_CHAIN:
            return  # refusals with no tenant: metrics and logs see them, no tenant's alert does
        found = matches(record)
        if not found:
            return
        settings, rules = await self._settings_for(record.tenant_id)
        now = self.clock()
        for match in found:
            rule = rules[match.rule]
            if not rule.enabled:
                continue
            start = window_start(now, rule.window_s)
            key = f"{record.tenant_id}:{match.rule.value}:{match.subject}:{start}"
            if await self._counter.add(key, window_s=rule.window_s) != rule.threshold:
                continue
            summary = f"{rule.threshold} {_WHAT[match.rule]} within {rule.window_s} s ({match.subject})."
            finding = Finding(match.rule, match.subject, datetime.fromtimestamp(start, UTC), rule, summary)
            await self._fire(record.tenant_id, finding, settings)

    async def _fire(self, tenant_id: uuid.UUID, finding: Finding, settings: AlertSettings) -> None:
        ctx = system_context(tenant_id, mode=self._mode, request_id=f"alert:{finding.rule.value}")
        alert = await self.store.raise_alert(ctx, finding)
        if alert is None:
            return  # this window's alert exists: raised by another process, or earlier
        if self._on_raised is not None:
            self._on_raised(alert)
        if alert.response is not None:
            await self._respond(ctx, alert)
        task = asyncio.get_running_loop().create_task(self._notifier.notify(ctx, alert, settings))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, ctx: TenantContext, alert: AlertInfo) -> None:
        reason = f"alert {alert.id}: {alert.rule} ({alert.subject})"
        try:
            if alert.response == "pause_ai" and self._responses.pause_ai is not None:
                result = await self._responses.pause_ai(ctx, reason)
            elif alert.response == "revoke_key" and self._responses.revoke_key is not None:
                result = await self._responses.revoke_key(ctx, alert.subject.removeprefix("key:"), reason)
            else:
                result = "not available in this process"
        except TenantgateError as exc:
            result = f"failed: {exc.code}"
        _log.warning("alert.responded", tenant_id=str(alert.tenant_id), alert_id=str(alert.id),
                     response=alert.response, result=result)  # fmt: skip
        await self.store.responded(ctx, alert.id, result[:500])

    async def _settings_for(self, tenant_id: uuid.UUID) -> tuple[AlertSettings, dict[Rule, RuleSettings]]:
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        ctx = system_context(tenant_id, mode=self._mode, request_id="alerts:settings")
        settings = await self.store.settings(ctx)
        rules = {rule: settings.rule(rule) for rule in Rule}
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded: a cache, not a registry of tenants
        self._cache[tenant_id] = (now + self._ttl, settings, rules)
        return settings, rules

    # --- the tenant's surface ----------------------------------------------------------------

    async def settings(self, ctx: TenantContext) -> AlertSettings:
        return await self.store.settings(ctx)

    async def set_settings(self, ctx: TenantContext, document: AlertSettings | dict[str, Any]) -> AlertSettings:
        """Replace the tenant's settings; this process uses them at once, others within the cache's TTL."""
        stored = await self.store.set_settings(ctx, document)
        self._cache.pop(ctx.tenant_id, None)
        return stored

    async def drain(self) -> None:
        """Wait until every notification started so far has finished (delivered or given up)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._counter.close()
