"""Inbound webhooks (``/v1/webhooks/{provider}/{endpoint_id}``) and the endpoints that receive them.

The delivery routes take no API key: the signature over the raw body is the authentication.
Every failure (unknown endpoint, bad or stale signature, rate-limited) is the same 401, so
a caller learns nothing about which check failed; the reason goes to the audit trail.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.webhooks import WebhookRejected

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["webhooks"])

_MAX_BODY = 1024 * 1024  # providers send small JSON events; a larger body is not one of theirs


def _refused() -> JSONResponse:
    return JSONResponse(
        {"code": "unauthenticated", "message": "The webhook delivery could not be verified."}, status_code=401
    )


def _endpoint_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class EndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["standard", "stripe", "whatsapp"]
    secret: SecretStr = Field(description="The signing secret (whsec_..., Stripe's, or the Meta app secret).")
    verify_token: SecretStr | None = Field(None, description="WhatsApp: the token Meta echoes in its handshake.")
    phone_number_id: str | None = Field(None, max_length=64, description="WhatsApp: the number this endpoint serves.")
    principal_id: uuid.UUID | None = Field(None, description="WhatsApp: whose grants the conversations run under.")
    tolerance_s: int = Field(300, ge=1, le=3600)


class EndpointCreated(BaseModel):
    endpoint_id: uuid.UUID
    provider: str
    path: str


@router.post("/webhook-endpoints", response_model=EndpointCreated, status_code=201, responses=ERROR_RESPONSES)
async def create_endpoint(body: EndpointRequest, ctx: Caller, services: ServicesDep) -> EndpointCreated:
    """Register a webhook endpoint; its secret is sealed in the vault. Owner or admin."""
    endpoint = await services.webhooks.endpoints.create(
        ctx,
        provider=body.provider,
        secret=body.secret.get_secret_value(),
        verify_token=body.verify_token.get_secret_value() if body.verify_token else None,
        phone_number_id=body.phone_number_id,
        principal_id=body.principal_id,
        tolerance_s=body.tolerance_s,
    )
    return EndpointCreated(
        endpoint_id=endpoint.id, provider=endpoint.provider, path=f"/v1/webhooks/{endpoint.provider}/{endpoint.id}"
    )


class Received(BaseModel):
    received: int = Field(description="Events recorded as new signals.")
    duplicates: int = Field(description="Events seen before (by provider event id), not recorded again.")


# Every refusal is the same 401; 422 is listed because FastAPI would otherwise add its own validation model.
_DELIVERY_ERRORS = error_responses(401, 422)


@router.post("/webhooks/{provider}/{endpoint_id}", response_model=Received, responses=_DELIVERY_ERRORS)
async def receive_webhook(provider: str, endpoint_id: str, request: Request, services: ServicesDep) -> JSONResponse:
    """Verify a delivery over its raw bytes; record its events as signals; answer at once."""
    parsed = _endpoint_id(endpoint_id)
    body = await request.body()
    if parsed is None or len(body) > _MAX_BODY:
        services.metrics.webhook_verification(provider, "rejected")
        return _refused()
    try:
        result = await services.webhooks.receive(provider, parsed, request.headers, body)
    except WebhookRejected:
        services.metrics.webhook_verification(provider, "rejected")
        return _refused()
    services.metrics.webhook_verification(provider, "verified")
    return JSONResponse({"received": len(result.recorded), "duplicates": len(result.duplicates)})


@router.get(
    "/webhooks/whatsapp/{endpoint_id}",
    response_class=Response,  # no default media type: the echo is plain text, every refusal the same JSON 401
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **_DELIVERY_ERRORS},
)
async def whatsapp_handshake(
    endpoint_id: str,
    services: ServicesDep,
    mode: Annotated[str, Query(alias="hub.mode")] = "",
    token: Annotated[str, Query(alias="hub.verify_token")] = "",
    challenge: Annotated[str, Query(alias="hub.challenge")] = "",
) -> PlainTextResponse | JSONResponse:
    """Meta's subscription check: echo ``hub.challenge`` when ``hub.verify_token`` matches."""
    parsed = _endpoint_id(endpoint_id)
    if parsed is None:
        return _refused()
    try:
        echoed = await services.webhooks.handshake(parsed, mode=mode, token=token, challenge=challenge)
    except WebhookRejected:
        return _refused()
    return PlainTextResponse(echoed)
