"""Inbound webhook deliveries: route, verify over the raw bytes, dedupe, record signals, enqueue.

Nothing is parsed or stored before the signature checks out. An accepted delivery becomes
one signal per event (deduplicated by the provider's event id), and processing is handed
to ``process`` (the job queue, or an in-process task): the response does not wait for it.
Failed verifications are audited in the endpoint's tenant and rate-limited per endpoint.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger
from tenantgate.signals import SignalStore
from tenantgate.webhooks._endpoints import Endpoint, WebhookEndpoints
from tenantgate.webhooks._verify import (
    StandardWebhooks,
    StripeWebhooks,
    VerifiedDelivery,
    Verifier,
    WebhookRejected,
    WhatsAppWebhooks,
)

__all__ = ["IngestResult", "Process", "WebhookIngest"]

Process = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]
_log = get_logger("tenantgate.webhooks")


@dataclass(frozen=True, slots=True)
class IngestResult:
    tenant_id: uuid.UUID
    recorded: tuple[uuid.UUID, ...]  # new signals
    duplicates: tuple[uuid.UUID, ...]  # signals recorded by an earlier delivery of the same event


@dataclass(frozen=True, slots=True)
class _Event:
    type: str
    dedupe_key: str
    source_event_id: str
    payload: dict[str, Any]
    occurred_at: datetime


def _verifier(endpoint: Endpoint, secret: str) -> Verifier:
    if endpoint.provider == "standard":
        return StandardWebhooks(secret, tolerance_s=endpoint.tolerance_s)
    if endpoint.provider == "stripe":
        return StripeWebhooks(secret, tolerance_s=endpoint.tolerance_s)
    return WhatsAppWebhooks(secret)


class _FailureLimit:
    """At most ``limit`` failed verifications per endpoint per minute; more are refused unchecked."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._failures: dict[uuid.UUID, deque[float]] = {}

    def check(self, endpoint_id: uuid.UUID, now: float) -> None:
        window = self._failures.get(endpoint_id)
        while window and window[0] < now - 60:
            window.popleft()
        if window is not None and len(window) >= self._limit:
            raise WebhookRejected("too many failed verifications for this endpoint")

    def failed(self, endpoint_id: uuid.UUID, now: float) -> None:
        if len(self._failures) > 100_000:
            self._failures.clear()  # bounded memory under a flood of made-up endpoint ids
        self._failures.setdefault(endpoint_id, deque()).append(now)


class WebhookIngest:
    """The whole inbound path, for the HTTP edge to call with the raw request."""

    def __init__(
        self,
        *,
        endpoints: WebhookEndpoints,
        signals: SignalStore,
        audit: AuditLog,
        mode: DeploymentMode,
        process: Process,
        failures_per_minute: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoints = endpoints
        self._signals = signals
        self._audit = audit
        self._mode = mode
        self._process = process
        self._limit = _FailureLimit(failures_per_minute)
        self._clock = clock

    async def receive(
        self, provider: str, endpoint_id: uuid.UUID, headers: Mapping[str, str], body: bytes
    ) -> IngestResult:
        """Verify and record one delivery; raises :class:`WebhookRejected` (answer 401) otherwise."""
        now = self._clock()
        self._limit.check(endpoint_id, now)
        endpoint = await self.endpoints.route(endpoint_id)
        if endpoint is None or endpoint.provider != provider:
            self._limit.failed(endpoint_id, now)
            _log.warning("webhook.rejected", endpoint_id=str(endpoint_id), reason="unknown endpoint")
            raise WebhookRejected("unknown endpoint")
        ctx = system_context(endpoint.tenant_id, mode=self._mode, request_id=f"webhook:{uuid.uuid4()}")
        try:
            secret = await self.endpoints.secret(ctx, endpoint)
            delivery = _verifier(endpoint, secret).verify({k.lower(): v for k, v in headers.items()}, body, now=now)
            try:
                events = _events(endpoint, delivery)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise WebhookRejected("the verified body does not have the provider's shape") from None
        except WebhookRejected as exc:
            self._limit.failed(endpoint_id, now)
            await self._rejected(ctx, endpoint, exc.reason)
            raise
        except TenantgateError as exc:  # the secret could not be opened: fail closed, same answer
            self._limit.failed(endpoint_id, now)
            await self._rejected(ctx, endpoint, f"secret unavailable ({exc.code})")
            raise WebhookRejected("secret unavailable") from exc
        return await self._record(ctx, endpoint, events)

    async def handshake(self, endpoint_id: uuid.UUID, *, mode: str, token: str, challenge: str) -> str:
        """WhatsApp's subscription check: echo ``hub.challenge`` if the verify token matches."""
        now = self._clock()
        self._limit.check(endpoint_id, now)
        endpoint = await self.endpoints.route(endpoint_id)
        if endpoint is None or endpoint.provider != "whatsapp" or mode != "subscribe":
            self._limit.failed(endpoint_id, now)
            raise WebhookRejected("not a WhatsApp endpoint, or not a subscribe request")
        if not endpoint.verify_token_matches(token) or not challenge.isprintable() or len(challenge) > 200:
            self._limit.failed(endpoint_id, now)
            ctx = system_context(endpoint.tenant_id, mode=self._mode, request_id="webhook:handshake")
            await self._rejected(ctx, endpoint, "verify token does not match")
            raise WebhookRejected("verify token does not match")
        return challenge

    async def _record(self, ctx: TenantContext, endpoint: Endpoint, events: list[_Event]) -> IngestResult:
        recorded: list[uuid.UUID] = []
        duplicates: list[uuid.UUID] = []
        for event in events:
            signal, created = await self._signals.record(
                ctx, type=event.type, source=f"webhook:{endpoint.provider}:{endpoint.id}",
                dedupe_key=event.dedupe_key, payload=event.payload, occurred_at=event.occurred_at,
                source_event_id=event.source_event_id,
            )  # fmt: skip
            (recorded if created else duplicates).append(signal.id)
        for signal_id in recorded:
            await self._process(ctx.tenant_id, signal_id)
        return IngestResult(ctx.tenant_id, tuple(recorded), tuple(duplicates))

    async def _rejected(self, ctx: TenantContext, endpoint: Endpoint, reason: str) -> None:
        await self._audit.record(
            ctx,
            AuditEvent(
                action="webhook.rejected", decision="deny", code="webhook_rejected",
                payload={"endpoint_id": str(endpoint.id), "provider": endpoint.provider, "reason": reason},
            ),
        )  # fmt: skip


def _events(endpoint: Endpoint, delivery: VerifiedDelivery) -> list[_Event]:
    body = delivery.body
    if not isinstance(body, dict):
        raise WebhookRejected("the event is not a JSON object")
    if endpoint.provider == "standard":
        payload = {"event_type": str(body.get("type", "")), "data": body.get("data", {})}
        return [_Event("webhook.received@v1", f"standard:{delivery.event_id}", delivery.event_id, payload,
                       delivery.occurred_at)]  # fmt: skip
    if endpoint.provider == "stripe":
        obj = body.get("data", {}).get("object", {}) if isinstance(body.get("data"), dict) else {}
        payload = {
            "event_id": delivery.event_id, "event_type": body.get("type"),
            "object_id": obj.get("id") if isinstance(obj, dict) else None, "livemode": bool(body.get("livemode")),
        }  # fmt: skip
        return [_Event("stripe.event.received@v1", f"stripe:{delivery.event_id}", delivery.event_id, payload,
                       delivery.occurred_at)]  # fmt: skip
    return _whatsapp_events(endpoint, body, delivery.occurred_at)


def _whatsapp_events(endpoint: Endpoint, body: dict[str, Any], received: datetime) -> list[_Event]:
    events: list[_Event] = []
    for entry in body.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            phone_number_id = str(value.get("metadata", {}).get("phone_number_id", ""))
            if phone_number_id != endpoint.phone_number_id:
                # An endpoint speaks for one number: a delivery about another is not this tenant's.
                raise WebhookRejected("the notification is for another phone number")
            for message in value.get("messages", []):
                if message.get("type") != "text":
                    continue
                sent = int(message.get("timestamp", "0"))
                message_id = str(message["id"])
                payload = {
                    "phone_number_id": phone_number_id,
                    "from": str(message["from"]),
                    "message_id": message_id,
                    "text": str(message["text"]["body"]),
                    "sent_at": sent,
                }
                occurred = datetime.fromtimestamp(sent, UTC) if sent else received
                events.append(
                    _Event("whatsapp.message.received@v1", f"whatsapp:{message_id}", message_id, payload, occurred)
                )
            for status in value.get("statuses", []):
                payload = {"phone_number_id": phone_number_id, "message_id": str(status["id"]),
                           "status": str(status["status"])}  # fmt: skip
                key = f"whatsapp:{status['id']}:{status['status']}"
                events.append(_Event("whatsapp.status.updated@v1", key, str(status["id"]), payload, received))
    return events
