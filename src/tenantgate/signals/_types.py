"""Signal types: versioned names, each with the schema its payload is validated against.

A new version is a new entry (``...@v2``); old versions stay registered, so signals
recorded under them stay readable and replayable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tenantgate.errors import InvalidInput

__all__ = [
    "SIGNAL_TYPES",
    "SignalTypeUnknown",
    "StandardWebhookReceived",
    "StripeEventReceived",
    "WhatsAppMessageReceived",
    "WhatsAppStatusUpdated",
    "validate_payload",
]

SIGNAL_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,80}@v[0-9]{1,4}")


class SignalTypeUnknown(InvalidInput):
    """No such signal type (or version) is registered."""

    code = "signal_type_unknown"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WhatsAppMessageReceived(_Payload):
    """``whatsapp.message.received@v1``: one inbound text message."""

    phone_number_id: str = Field(min_length=1, max_length=64)
    from_: str = Field(alias="from", min_length=1, max_length=32)
    message_id: str = Field(min_length=1, max_length=200)
    text: str = Field(max_length=4096)
    sent_at: int = Field(ge=0)


class WhatsAppStatusUpdated(_Payload):
    """``whatsapp.status.updated@v1``: delivery state of a message we sent."""

    phone_number_id: str = Field(min_length=1, max_length=64)
    message_id: str = Field(min_length=1, max_length=200)
    status: str = Field(min_length=1, max_length=32)


class StripeEventReceived(_Payload):
    """``stripe.event.received@v1``: billing events carry provider ids only, never amounts or people."""

    event_id: str = Field(pattern=r"^evt_[A-Za-z0-9_]{1,120}$")
    event_type: str = Field(pattern=r"^[a-z0-9_.]{1,120}$")
    object_id: str | None = Field(None, pattern=r"^[a-z]{2,8}_[A-Za-z0-9_]{1,120}$")
    livemode: bool


class StandardWebhookReceived(_Payload):
    """``webhook.received@v1``: a Standard Webhooks event: its type and data."""

    event_type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]


SIGNAL_TYPES: Mapping[str, type[_Payload]] = MappingProxyType(
    {
        "whatsapp.message.received@v1": WhatsAppMessageReceived,
        "whatsapp.status.updated@v1": WhatsAppStatusUpdated,
        "stripe.event.received@v1": StripeEventReceived,
        "webhook.received@v1": StandardWebhookReceived,
    }
)


def validate_payload(signal_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload, checked against its type's schema, as plain JSON (aliases kept)."""
    schema = SIGNAL_TYPES.get(signal_type)
    if schema is None:
        raise SignalTypeUnknown(f"No signal type {signal_type!r}; known: {', '.join(sorted(SIGNAL_TYPES))}.")
    try:
        return schema.model_validate(dict(payload)).model_dump(mode="json", by_alias=True)
    except ValidationError as exc:
        raise InvalidInput(f"The {signal_type} payload does not match its schema: {exc.errors()[0]['msg']}") from None
