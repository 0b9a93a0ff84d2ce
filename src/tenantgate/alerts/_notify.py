"""Alert notifications: the log, and a signed webhook through the egress door.

The webhook speaks Standard Webhooks: ``webhook-id`` (the alert id, the same on every
retry, so a receiver deduplicates), ``webhook-timestamp`` and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with the tenant's ``whsec_``
secret, a ``webhook_secret`` credential opened from the vault for each delivery).
Delivery goes through the client the installation gives (the egress door with the tenant's
domain lists), is retried with exponential backoff, and each attempt is counted on the
alert row. A 2xx ends it; a 4xx other than 408/429 is final.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from tenantgate.alerts._rules import AlertSettings
from tenantgate.alerts._store import AlertInfo, AlertStore
from tenantgate.context import TenantContext
from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger
from tenantgate.webhooks import WebhookRejected, sign_standard

__all__ = ["ClientFor", "Notifier", "SecretFor", "WebhookPolicy", "alert_body"]

_log = get_logger("tenantgate.alerts")

# (ctx, alert id) -> a client through the egress door; (ctx, credential name, alert id) -> the secret.
ClientFor = Callable[[TenantContext, uuid.UUID], httpx.AsyncClient]
SecretFor = Callable[[TenantContext, str, uuid.UUID], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    attempts: int = 5
    backoff_s: float = 1.0


def alert_body(alert: AlertInfo) -> bytes:
    """The delivery's raw body: what is signed is exactly what is sent."""
    document = {"type": "tenantgate.alert", "timestamp": alert.created_at.isoformat(), "data": alert.as_json()}
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


class _Final(Exception):
    """A failure retrying cannot fix (a refused address, a missing secret, a 4xx)."""


class Notifier:
    def __init__(
        self,
        *,
        store: AlertStore,
        client_for: ClientFor | None,
        secret_for: SecretFor | None,
        policy: WebhookPolicy = WebhookPolicy(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client_for = client_for
        self._secret_for = secret_for
        self._policy = policy
        self._clock = clock

    async def notify(self, ctx: TenantContext, alert: AlertInfo, settings: AlertSettings) -> None:
        """Every configured sink, in turn; never raises (a failed delivery is recorded on the alert)."""
        if settings.log:
            _log.warning(
                "alert.raised", tenant_id=str(alert.tenant_id), alert_id=str(alert.id), rule=alert.rule,
                subject=alert.subject, severity=alert.severity, threshold=alert.threshold, window_s=alert.window_s,
            )  # fmt: skip
        if settings.webhook_url is None or settings.webhook_credential is None:
            return
        if self._client_for is None or self._secret_for is None:
            _log.error("alert.webhook_unavailable", alert_id=str(alert.id))
            return
        await self._deliver(ctx, alert, settings.webhook_url, settings.webhook_credential)

    async def _deliver(self, ctx: TenantContext, alert: AlertInfo, url: str, credential: str) -> None:
        body = alert_body(alert)
        for attempt in range(self._policy.attempts):
            error: str | None
            try:
                await self._send_once(ctx, alert, url, credential, body)
                error = None
            except _Final as exc:
                await self._store.delivered(ctx, alert.id, error=str(exc)[:500])
                _log.warning("alert.webhook_failed", alert_id=str(alert.id), error=str(exc)[:200], final=True)
                return
            except (httpx.HTTPError, TenantgateError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
            await self._store.delivered(ctx, alert.id, error=error)
            if error is None:
                return
            _log.info("alert.webhook_retry", alert_id=str(alert.id), attempt=attempt + 1, error=error[:200])
            if attempt + 1 < self._policy.attempts:
                await asyncio.sleep(self._policy.backoff_s * 2**attempt)
        _log.warning("alert.webhook_failed", alert_id=str(alert.id), attempts=self._policy.attempts, final=True)

    async def _send_once(self, ctx: TenantContext, alert: AlertInfo, url: str, credential: str, body: bytes) -> None:
        assert self._client_for is not None
        assert self._secret_for is not None
        try:
            secret = await self._secret_for(ctx, credential, alert.id)
        except TenantgateError as exc:
            raise _Final(f"the webhook credential could not be opened ({exc.code})") from exc
        timestamp = int(self._clock())
        try:
            signature = sign_standard(secret, str(alert.id), timestamp, body)
        except WebhookRejected as exc:
            raise _Final("the webhook credential is not a whsec_<base64> secret") from exc
        headers = {
            "content-type": "application/json",
            "webhook-id": str(alert.id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
            "user-agent": "tenantgate-alerts",
        }
        async with self._client_for(ctx, alert.id) as client:
            try:
                response = await client.post(url, content=body, headers=headers)
            except TenantgateError as exc:
                if exc.code == "egress_denied":
                    raise _Final(f"egress refused: {exc.message}") from exc
                raise
        if response.is_success:
            return
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise _Final(f"the endpoint answered {response.status_code}")
        raise httpx.HTTPStatusError(f"the endpoint answered {response.status_code}", request=response.request,
                                    response=response)  # fmt: skip
