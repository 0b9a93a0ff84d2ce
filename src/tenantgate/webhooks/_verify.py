"""Signature verifiers for inbound webhooks, over the raw request bytes, before anything is parsed.

Each verifier raises the one :class:`WebhookRejected` for every failure (missing header,
bad encoding, wrong signature, stale or future timestamp); the reason is for the audit
trail, the caller answers a generic 401. Comparisons are constant-time.

- Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature`` holding
  space-separated ``v1,<base64>`` signatures (several during a rotation), HMAC-SHA256 of
  ``{id}.{timestamp}.{body}`` with the base64 key of a ``whsec_`` secret.
- Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``, HMAC-SHA256 of ``{t}.{body}``
  with the endpoint's signing secret.
- WhatsApp Cloud API (Meta): ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the body
  with the app secret. Meta signs no timestamp; its retries are deduplicated by message id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tenantgate.errors import TenantgateError

__all__ = [
    "StandardWebhooks",
    "StripeWebhooks",
    "VerifiedDelivery",
    "Verifier",
    "WebhookRejected",
    "WhatsAppWebhooks",
    "sign_standard",
    "sign_stripe",
    "sign_whatsapp",
]

DEFAULT_TOLERANCE_S = 300


class WebhookRejected(TenantgateError):
    """The delivery is not authentic (or not fresh); nothing was stored."""

    code = "webhook_rejected"

    def __init__(self, reason: str) -> None:
        super().__init__("The webhook delivery could not be verified.")
        self.reason = reason  # for the audit trail; never sent to the caller


@dataclass(frozen=True, slots=True)
class VerifiedDelivery:
    """An authentic delivery: its parsed body, the provider's event id and when it happened."""

    event_id: str
    occurred_at: datetime
    body: Any


class Verifier(Protocol):
    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> VerifiedDelivery: ...


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise WebhookRejected(f"missing header {name}")
    return value


def _fresh(timestamp: str, now: float, tolerance_s: int) -> datetime:
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRejected("malformed timestamp")
    if abs(now - int(timestamp)) > tolerance_s:
        raise WebhookRejected("timestamp outside the tolerance")
    return datetime.fromtimestamp(int(timestamp), UTC)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected("the signed body is not JSON") from None


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _standard_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRejected("the endpoint's secret is not a whsec_<base64> secret") from None


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A ``v1,<base64>`` signature (for senders and tests)."""
    digest = _hmac(_standard_key(secret), f"{msg_id}.{timestamp}.".encode() + body)
    return "v1," + base64.b64encode(digest).decode()


def sign_stripe(secret: str, timestamp: int, body: bytes) -> str:
    """A ``Stripe-Signature`` header value (for senders and tests)."""
    return f"t={timestamp},v1=" + _hmac(secret.encode(), f"{timestamp}.".encode() + body).hex()


def sign_whatsapp(app_secret: str, body: bytes) -> str:
    """An ``X-Hub-Signature-256`` header value (for senders and tests)."""
    return "sha256=" + _hmac(app_secret.encode(), body).hex()


class StandardWebhooks:
    """Standard Webhooks (standardwebhooks.com), as sent by Svix, OpenAI and others."""

    def __init__(self, secret: str, *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        self._key = _standard_key(secret)
        self._tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> VerifiedDelivery:
        msg_id = _header(headers, "webhook-id")
        timestamp = _header(headers, "webhook-timestamp")
        signatures = _header(headers, "webhook-signature")
        occurred = _fresh(timestamp, now, self._tolerance_s)
        expected = _hmac(self._key, f"{msg_id}.{timestamp}.".encode() + body)
        if not any(_matches_b64(expected, part) for part in signatures.split(" ")):
            raise WebhookRejected("no matching v1 signature")
        return VerifiedDelivery(msg_id, occurred, _json(body))


def _matches_b64(expected: bytes, part: str) -> bool:
    version, _, encoded = part.partition(",")
    if version != "v1":
        return False
    try:
        given = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(expected, given)


class StripeWebhooks:
    """Stripe's ``Stripe-Signature`` scheme; the event id is the body's ``id`` (``evt_...``)."""

    def __init__(self, secret: str, *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
        self._key = secret.encode()
        self._tolerance_s = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> VerifiedDelivery:
        fields = [item.partition("=") for item in _header(headers, "stripe-signature").split(",")]
        timestamps = [value for key, _, value in fields if key.strip() == "t"]
        signatures = [value.strip() for key, _, value in fields if key.strip() == "v1"]
        if len(timestamps) != 1 or not signatures:
            raise WebhookRejected("Stripe-Signature needs one t= and at least one v1=")
        occurred = _fresh(timestamps[0].strip(), now, self._tolerance_s)
        expected = _hmac(self._key, f"{timestamps[0].strip()}.".encode() + body).hex()
        if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures):
            raise WebhookRejected("no matching v1 signature")
        event = _json(body)
        event_id = event.get("id") if isinstance(event, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise WebhookRejected("the event has no id")
        return VerifiedDelivery(event_id, occurred, event)


class WhatsAppWebhooks:
    """Meta's ``X-Hub-Signature-256`` over the body with the app secret."""

    def __init__(self, app_secret: str) -> None:
        self._key = app_secret.encode()

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float) -> VerifiedDelivery:
        scheme, _, given = _header(headers, "x-hub-signature-256").partition("=")
        expected = _hmac(self._key, body).hex()
        if scheme != "sha256" or not hmac.compare_digest(expected.encode(), given.strip().encode()):
            raise WebhookRejected("X-Hub-Signature-256 does not match")
        payload = _json(body)
        return VerifiedDelivery(_whatsapp_event_id(payload), datetime.fromtimestamp(now, UTC), payload)


def _whatsapp_event_id(payload: Any) -> str:
    """The delivery's stable id: its messages' ids (``wamid...``) or status updates' ids and states."""
    ids: list[str] = []
    try:
        for entry in payload["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                ids += [str(m["id"]) for m in value.get("messages", [])]
                ids += [f"{s['id']}:{s['status']}" for s in value.get("statuses", [])]
    except (KeyError, TypeError):
        raise WebhookRejected("not a WhatsApp Business Account notification") from None
    if not ids:
        raise WebhookRejected("the notification carries no message or status")
    return ",".join(sorted(ids))[:300]
