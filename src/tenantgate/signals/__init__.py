"""Signals: the durable, deduplicated, secret-free event log, and subscribers by type."""

from tenantgate.signals._bus import SignalBus, SignalHandler
from tenantgate.signals._store import Signal, SignalNotFound, SignalStore
from tenantgate.signals._types import (
    SIGNAL_TYPES,
    SignalTypeUnknown,
    StandardWebhookReceived,
    StripeEventReceived,
    WhatsAppMessageReceived,
    WhatsAppStatusUpdated,
    validate_payload,
)

__all__ = [
    "SIGNAL_TYPES",
    "Signal",
    "SignalBus",
    "SignalHandler",
    "SignalNotFound",
    "SignalStore",
    "SignalTypeUnknown",
    "StandardWebhookReceived",
    "StripeEventReceived",
    "WhatsAppMessageReceived",
    "WhatsAppStatusUpdated",
    "validate_payload",
]
