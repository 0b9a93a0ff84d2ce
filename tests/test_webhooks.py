"""Inbound webhooks: signatures over raw bytes, freshness, dedupe by event id, nothing half-stored.

Deliveries are built the way each provider builds them (Standard Webhooks, Stripe, Meta's
WhatsApp Cloud API notifications) and sent to the real HTTP API.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Services
from tenantgate.signals import Signal
from tenantgate.webhooks import sign_standard, sign_stripe, sign_whatsapp
from tests.conftest import TenantFixture

STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-32byt").decode()
ROTATED_SECRET = "whsec_" + base64.b64encode(b"an-older-key-still-in-rotation!!").decode()
STRIPE_SECRET = "whsec_stripe_endpoint_signing_secret_0123"
APP_SECRET = "meta-app-secret-6f1d2c"
VERIFY_TOKEN = "verify-me-please"
PHONE_A = "106540352242922"


async def _endpoint(client: httpx.AsyncClient, tenant: TenantFixture, provider: str, secret: str, **extra: Any) -> str:
    response = await client.post(
        "/v1/webhook-endpoints", json={"provider": provider, "secret": secret, **extra}, headers=tenant.headers()
    )
    assert response.status_code == 201, response.text
    path: str = response.json()["path"]
    return path


def _standard(
    body: bytes, *, secret: str = STANDARD_SECRET, msg_id: str | None = None, at: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    at = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign_standard(secret, msg_id, at, body),
        "content-type": "application/json",
    }


def _event(kind: str = "invoice.paid", **data: Any) -> bytes:
    return json.dumps({"type": kind, "timestamp": "2026-11-30T12:00:00Z", "data": {"id": "inv_1", **data}}).encode()


async def _signals(services: Services, tenant: TenantFixture) -> list[Signal]:
    async with services.db.tenant(tenant.system) as conn:
        rows = (await conn.execute(sa.text("SELECT id FROM tenantgate.signals ORDER BY recorded_at"))).scalars().all()
    return [await services.signals.store.get(tenant.system, i) for i in rows]


async def _rejections(services: Services, tenant: TenantFixture) -> int:
    async with services.db.tenant(tenant.system) as conn:
        count = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM tenantgate.audit_events WHERE tenant_id = :t AND action = 'webhook.rejected'"
            ),
            {"t": tenant.id},
        )
    return int(count or 0)


async def test_a_standard_webhook_is_verified_recorded_once_and_processed(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    seen: list[str] = []

    async def subscriber(ctx: Any, signal: Signal) -> None:
        if signal.tenant_id == tenant_a.id:
            seen.append(signal.payload["event_type"])

    services.signals.subscribe("webhook.received@v1", subscriber)
    body = _event()
    headers = _standard(body)
    first = await client.post(path, content=body, headers=headers)
    again = await client.post(path, content=body, headers=headers)  # the provider retries the same message
    await services.signals.drain()
    assert first.status_code == 200
    assert first.json() == {"received": 1, "duplicates": 0}
    assert again.json() == {"received": 0, "duplicates": 1}
    [signal] = await _signals(services, tenant_a)
    assert (signal.type, signal.source_event_id) == ("webhook.received@v1", headers["webhook-id"])
    assert signal.payload == {"event_type": "invoice.paid", "data": {"id": "inv_1"}}
    assert signal.processed_at is not None
    assert seen == ["invoice.paid"]  # processed once: the replay recorded nothing new


async def test_rotation_accepts_any_listed_signature(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    body = _event()
    headers = _standard(body)
    old = _standard(body, secret=ROTATED_SECRET, msg_id=headers["webhook-id"], at=int(headers["webhook-timestamp"]))
    headers["webhook-signature"] = f"{old['webhook-signature']} {headers['webhook-signature']}"
    assert (await client.post(path, content=body, headers=headers)).status_code == 200


@pytest.mark.parametrize(
    "forgery",
    ["tampered_body", "wrong_secret", "stale", "future", "no_signature", "no_timestamp", "no_id", "reserialised",
     "v2_scheme", "garbage_signature"],
)  # fmt: skip
async def test_forged_or_stale_deliveries_are_refused_and_store_nothing(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, forgery: str
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    body = _event()
    headers = _standard(body)
    now = int(time.time())
    if forgery == "tampered_body":
        body = body.replace(b"inv_1", b"inv_2")
    elif forgery == "wrong_secret":
        headers = _standard(body, secret=ROTATED_SECRET)
    elif forgery in {"stale", "future"}:
        headers = _standard(body, at=now - 301 if forgery == "stale" else now + 301)
    elif forgery.startswith("no_"):
        del headers[
            {"no_signature": "webhook-signature", "no_timestamp": "webhook-timestamp", "no_id": "webhook-id"}[forgery]
        ]
    elif forgery == "reserialised":
        # Signed over the parsed-and-dumped JSON, sent as the provider's bytes: must not verify.
        body = json.dumps(json.loads(body), indent=2).encode()
    elif forgery == "v2_scheme":
        headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    else:
        headers["webhook-signature"] = "v1,not-base64!!"
    before = await _rejections(services, tenant_a)
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": "unauthenticated", "message": "The webhook delivery could not be verified."}
    assert await _signals(services, tenant_a) == []
    assert await _rejections(services, tenant_a) == before + 1  # audited in the endpoint's tenant


async def test_unknown_endpoints_and_wrong_provider_get_the_same_401(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    body = _event()
    for target in (f"/v1/webhooks/standard/{uuid.uuid4()}", "/v1/webhooks/standard/not-a-uuid",
                   path.replace("/standard/", "/stripe/")):  # fmt: skip
        response = await client.post(target, content=body, headers=_standard(body))
        assert response.status_code == 401


async def test_secret_shaped_payloads_are_refused(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    body = _event(token="sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc")
    response = await client.post(path, content=body, headers=_standard(body))
    assert response.status_code == 422
    assert response.json()["code"] == "secret_in_payload"
    assert await _signals(services, tenant_a) == []


async def test_failed_verifications_are_rate_limited_per_endpoint(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    body = _event()
    for _ in range(30):
        bad = _standard(body, secret=ROTATED_SECRET)
        assert (await client.post(path, content=body, headers=bad)).status_code == 401
    # The limit holds even for a good delivery now: refused before the secret is opened.
    assert (await client.post(path, content=body, headers=_standard(body))).status_code == 401
    assert await _signals(services, tenant_a) == []


def _stripe_event(event_id: str) -> bytes:
    return json.dumps(
        {"id": event_id, "object": "event", "api_version": "2024-06-20", "created": int(time.time()),
         "type": "invoice.payment_succeeded", "livemode": False,
         "data": {"object": {"id": "in_1PqXYZ", "object": "invoice", "amount_paid": 4200,
                             "customer_email": "jenny@example.com"}}}
    ).encode()  # fmt: skip


async def test_stripe_events_keep_provider_ids_only_and_dedupe_by_event_id(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "stripe", STRIPE_SECRET)
    body = _stripe_event("evt_1PqABC")
    now = int(time.time())
    ok = await client.post(path, content=body, headers={"Stripe-Signature": sign_stripe(STRIPE_SECRET, now, body)})
    replay = await client.post(
        path, content=body, headers={"Stripe-Signature": sign_stripe(STRIPE_SECRET, now + 5, body)}
    )
    stale = await client.post(
        path, content=body, headers={"Stripe-Signature": sign_stripe(STRIPE_SECRET, now - 400, body)}
    )
    tampered = body.replace(b"4200", b"1")
    forged = await client.post(
        path, content=tampered, headers={"Stripe-Signature": sign_stripe(STRIPE_SECRET, now, body)}
    )
    assert (ok.status_code, replay.json(), stale.status_code, forged.status_code) == (
        200, {"received": 0, "duplicates": 1}, 401, 401,
    )  # fmt: skip
    [signal] = await _signals(services, tenant_a)
    assert signal.payload == {
        "event_id": "evt_1PqABC", "event_type": "invoice.payment_succeeded",
        "object_id": "in_1PqXYZ", "livemode": False,
    }  # fmt: skip


def _whatsapp(phone_number_id: str, text: str, message_id: str | None = None) -> bytes:
    return json.dumps(
        {"object": "whatsapp_business_account",
         "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
             "messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
             "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551181"}],
             "messages": [{"from": "16315551181", "id": message_id or f"wamid.{uuid.uuid4().hex}",
                           "timestamp": str(int(time.time())), "type": "text", "text": {"body": text}}]}}]}]}
    ).encode()  # fmt: skip


async def test_whatsapp_handshake_and_signed_notifications(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    bot = await services.principals.create(
        tenant_a.system, name="whatsapp-bot", kind=PrincipalKind.SERVICE_ACCOUNT, roles=frozenset({Role.MEMBER})
    )
    missing = await client.post(
        "/v1/webhook-endpoints",
        json={"provider": "whatsapp", "secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "phone_number_id": PHONE_A},
        headers=tenant_a.headers(),
    )
    assert missing.status_code == 422  # a WhatsApp endpoint names whose grants its conversations run under
    path = await _endpoint(
        client, tenant_a, "whatsapp", APP_SECRET, verify_token=VERIFY_TOKEN, phone_number_id=PHONE_A,
        principal_id=str(bot.id),
    )  # fmt: skip
    hub = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    shook = await client.get(path, params={**hub, "hub.verify_token": VERIFY_TOKEN})
    refused = await client.get(path, params={**hub, "hub.verify_token": "guess"})
    assert (shook.status_code, shook.text, refused.status_code) == (200, "1158201444", 401)

    body = _whatsapp(PHONE_A, "hello")
    ok = await client.post(path, content=body, headers={"X-Hub-Signature-256": sign_whatsapp(APP_SECRET, body)})
    wrong = await client.post(path, content=body, headers={"X-Hub-Signature-256": sign_whatsapp("other", body)})
    # Correctly signed with this app's secret, but about a number this endpoint does not serve.
    other = _whatsapp("999999999999999", "hi")
    crossed = await client.post(path, content=other, headers={"X-Hub-Signature-256": sign_whatsapp(APP_SECRET, other)})
    assert (ok.status_code, wrong.status_code, crossed.status_code) == (200, 401, 401)
    [signal] = await _signals(services, tenant_a)
    assert signal.type == "whatsapp.message.received@v1"
    assert (signal.payload["from"], signal.payload["text"]) == ("16315551181", "hello")
    assert await _signals(services, tenant_b) == []


async def test_signals_and_endpoints_are_invisible_across_tenants(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    path = await _endpoint(client, tenant_a, "standard", STANDARD_SECRET)
    body = _event()
    assert (await client.post(path, content=body, headers=_standard(body))).status_code == 200
    [signal] = await _signals(services, tenant_a)
    with pytest.raises(Exception, match="No signal"):
        await services.signals.store.get(tenant_b.system, signal.id)
    async with services.db.tenant(tenant_b.system) as conn:
        endpoints = (await conn.execute(sa.text("SELECT tenant_id FROM tenantgate.webhook_endpoints"))).scalars().all()
        signals = (await conn.execute(sa.text("SELECT tenant_id FROM tenantgate.signals"))).scalars().all()
    assert set(endpoints) <= {tenant_b.id}
    assert set(signals) <= {tenant_b.id}
    # Tenant b's key cannot register endpoints in a's name, and members cannot register at all.
    created = await client.post(
        "/v1/webhook-endpoints", json={"provider": "standard", "secret": STANDARD_SECRET}, headers=tenant_b.headers()
    )
    assert created.status_code == 201
    assert created.json()["endpoint_id"] not in path
