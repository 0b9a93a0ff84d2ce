"""Inbound webhooks: endpoints, signature verifiers over raw bytes, and the ingest path to signals."""

from tenantgate.webhooks._endpoints import Endpoint, WebhookEndpoints
from tenantgate.webhooks._ingest import IngestResult, Process, WebhookIngest
from tenantgate.webhooks._verify import (
    StandardWebhooks,
    StripeWebhooks,
    VerifiedDelivery,
    Verifier,
    WebhookRejected,
    WhatsAppWebhooks,
    sign_standard,
    sign_stripe,
    sign_whatsapp,
)

__all__ = [
    "Endpoint",
    "IngestResult",
    "Process",
    "StandardWebhooks",
    "StripeWebhooks",
    "VerifiedDelivery",
    "Verifier",
    "WebhookEndpoints",
    "WebhookIngest",
    "WebhookRejected",
    "WhatsAppWebhooks",
    "sign_standard",
    "sign_stripe",
    "sign_whatsapp",
]
