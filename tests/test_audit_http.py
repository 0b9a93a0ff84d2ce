"""``GET /v1/audit`` and the events the existing flows emit: keys, principals, authentication, tenants."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tenantgate.audit import PLATFORM_CHAIN
from tenantgate.installation import Services
from tenantgate.tenants import TenantStatus
from tests.conftest import TenantFixture

FAKE_SECRET = "S" * 43
SYSTEM = str(uuid.UUID(int=0))


def rid(label: str) -> str:
    """A request id no other test uses."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


async def audit(client: httpx.AsyncClient, tenant: TenantFixture, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/audit", params=params, headers=tenant.headers())
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def events(client: httpx.AsyncClient, tenant: TenantFixture, **params: Any) -> list[dict[str, Any]]:
    """Every event of the tenant's chain that matches, paging through."""
    found: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        page = await audit(client, tenant, limit=500, **params, **({"after_seq": after} if after else {}))
        found += page["events"]
        after = page["next_after_seq"]
        if after is None:
            return found


async def platform_events(services: Services, request_id: str) -> list[dict[str, Any]]:
    return [e async for e in services.audit.export(PLATFORM_CHAIN) if e["request_id"] == request_id]


async def create_key(client: httpx.AsyncClient, tenant: TenantFixture, request_id: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/keys", json=body, headers={**tenant.headers(), "X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# --- reading -------------------------------------------------------------------------------------


async def test_an_owner_reads_only_its_own_tenants_events(
    client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    b_request = rid("b-key")
    b_key = await create_key(client, tenant_b, b_request)
    await create_key(client, tenant_a, rid("a-key"))
    seen_by_a = json.dumps(await events(client, tenant_a))
    assert b_request not in seen_by_a
    assert b_key["id"] not in seen_by_a
    assert str(tenant_b.owner_id) not in seen_by_a
    seen_by_b = await events(client, tenant_b)
    assert b_request in {e["request_id"] for e in seen_by_b}
    # Filters cannot reach across either: B's principal, asked for by A, yields nothing.
    assert await events(client, tenant_a, principal_id=str(tenant_b.owner_id)) == []


async def test_filters_select_by_action_decision_principal_and_time(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    before = datetime.now(UTC)
    for _ in range(2):
        await create_key(client, tenant_a, rid("filter"))
    created = await events(client, tenant_a, action="key.created")
    assert len(created) == 3  # the fixture's owner key, and two more
    assert {e["action"] for e in created} == {"key.created"}
    succeeded = await events(client, tenant_a, decision="succeeded")
    assert succeeded
    assert {(e["action"], e["principal_id"]) for e in succeeded} == {("auth.succeeded", str(tenant_a.owner_id))}
    by_owner = await events(client, tenant_a, principal_id=str(tenant_a.owner_id))
    assert {e["principal_id"] for e in by_owner} == {str(tenant_a.owner_id)}
    assert {"auth.succeeded", "key.created"} <= {e["action"] for e in by_owner}
    recent = await events(client, tenant_a, action="key.created", since=before.isoformat())
    assert len(recent) == 2
    assert await events(client, tenant_a, action="key.created", until=before.isoformat()) == created[:1]


async def test_pages_follow_the_chain_and_end(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    for _ in range(3):
        await create_key(client, tenant_a, rid("paging"))
    everything = (await audit(client, tenant_a, limit=500))["events"]
    walked: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        page = await audit(client, tenant_a, limit=2, **({"after_seq": after} if after is not None else {}))
        assert len(page["events"]) <= 2
        walked += page["events"]
        after = page["next_after_seq"]
        if after is None:
            break
        assert after == page["events"][-1]["seq"]
    # Paging requests authenticate too, so the chain grew while it was read: compare the prefix.
    assert walked[: len(everything)] == everything
    assert [e["seq"] for e in walked] == list(range(1, len(walked) + 1))
    first = walked[0]
    assert first["prev_hash"] == "00" * 32
    assert walked[1]["prev_hash"] == first["hash"]


async def test_members_cannot_read_the_audit_log_and_bad_parameters_are_refused(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    principal = await client.post(
        "/v1/principals", json={"name": "m", "kind": "user", "roles": ["member"]}, headers=tenant_a.headers()
    )
    member = await create_key(client, tenant_a, rid("member"), principal_id=principal.json()["id"])
    refused = await client.get("/v1/audit", headers=tenant_a.headers(member["key"]))
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"
    for params in ({"limit": 501}, {"limit": 0}, {"since": "2025-01-01T00:00:00"}, {"after_seq": -1}):
        response = await client.get("/v1/audit", params=params, headers=tenant_a.headers())
        assert response.status_code == 422, params
        assert response.json()["code"] == "invalid_input"
    unauthenticated = await client.get("/v1/audit")
    assert unauthenticated.status_code == 401


def test_the_audit_endpoint_is_documented(app: Any) -> None:
    operation = app.openapi()["paths"]["/v1/audit"]["get"]
    assert {"200", "401", "403", "422", "503"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} == {
        "action", "decision", "principal_id", "since", "until", "after_seq", "limit",
    }  # fmt: skip


# --- what the flows emit -------------------------------------------------------------------------


async def test_tenant_setup_is_on_the_tenants_chain_and_creation_on_the_platform_chain(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    setup = (await audit(client, tenant_a, limit=2))["events"]
    assert [(e["seq"], e["action"], e["principal_id"], e["principal_kind"]) for e in setup] == [
        (1, "principal.created", SYSTEM, "system"),
        (2, "key.created", SYSTEM, "system"),
    ]
    assert setup[0]["payload"] == {"principal_id": str(tenant_a.owner_id), "kind": "user", "roles": ["owner"]}
    assert setup[1]["payload"]["principal_id"] == str(tenant_a.owner_id)
    assert setup[1]["payload"]["key_prefix"] == tenant_a.owner_key.split("_")[1]
    created = [
        e async for e in services.audit.export(PLATFORM_CHAIN)
        if e["action"] == "tenant.created" and e["payload"]["tenant_id"] == str(tenant_a.id)
    ]  # fmt: skip
    assert [e["payload"]["name"] for e in created] == [tenant_a.tenant.name]


async def test_key_lifecycle_events_name_who_did_what(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    created_in = rid("create")
    key = await create_key(client, tenant_a, created_in, roles=["admin"], name="ci")
    rotated_in, revoked_in = rid("rotate"), rid("revoke")
    rotated = await client.post(
        f"/v1/keys/{key['id']}/rotate", json={"overlap_seconds": 60},
        headers={**tenant_a.headers(), "X-Request-ID": rotated_in},
    )  # fmt: skip
    revoked = await client.post(
        f"/v1/keys/{key['id']}/revoke", headers={**tenant_a.headers(), "X-Request-ID": revoked_in}
    )
    assert (rotated.status_code, revoked.status_code) == (201, 200)
    by_request = {e["request_id"]: e for e in await events(client, tenant_a) if e["action"].startswith("key.")}
    assert by_request[created_in]["action"] == "key.created"
    assert by_request[created_in]["payload"] == {
        "key_id": key["id"], "key_prefix": key["prefix"], "principal_id": str(tenant_a.owner_id),
        "roles": ["admin"], "expires_at": None,
    }  # fmt: skip
    assert by_request[rotated_in]["action"] == "key.rotated"
    assert by_request[rotated_in]["payload"]["new_key_id"] == rotated.json()["id"]
    assert by_request[rotated_in]["payload"]["overlap_seconds"] == 60
    assert by_request[revoked_in]["action"] == "key.revoked"
    assert by_request[revoked_in]["payload"]["key_id"] == key["id"]
    for request_id in (created_in, rotated_in, revoked_in):
        event = by_request[request_id]
        assert (event["principal_id"], event["principal_kind"]) == (str(tenant_a.owner_id), "user")
    # Secrets never reach the log.
    assert key["key"] not in json.dumps(list(by_request.values()))
    assert rotated.json()["key"] not in json.dumps(list(by_request.values()))


async def test_authentication_outcomes_land_on_the_right_chain(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    prefix = tenant_a.owner_key.split("_")[1]
    ok_in, bad_in, unknown_in, missing_in = rid("ok"), rid("bad"), rid("unknown"), rid("missing")
    attempts = [
        (ok_in, tenant_a.owner_key, 200),
        (bad_in, f"tg_{prefix}_{FAKE_SECRET}", 401),
        (unknown_in, f"tg_zzzzzzzzzzzz_{FAKE_SECRET}", 401),
    ]
    for request_id, key, status in attempts:
        headers = {"Authorization": f"Bearer {key}", "X-Request-ID": request_id}
        assert (await client.get("/v1/whoami", headers=headers)).status_code == status
    assert (await client.get("/v1/whoami", headers={"X-Request-ID": missing_in})).status_code == 401

    mine = {e["request_id"]: e for e in await events(client, tenant_a) if e["action"].startswith("auth.")}
    success = mine[ok_in]
    assert (success["action"], success["decision"], success["principal_id"]) == (
        "auth.succeeded", "succeeded", str(tenant_a.owner_id),
    )  # fmt: skip
    assert success["payload"]["method"] == "api_key"
    # A wrong secret for a known prefix is the key's tenant's business: its own chain.
    failure = mine[bad_in]
    assert (failure["action"], failure["decision"], failure["code"], failure["principal_id"]) == (
        "auth.failed", "failed", "unauthenticated", None,
    )  # fmt: skip
    assert failure["payload"] == {"method": "api_key", "reason": "bad_secret", "key_prefix": prefix}
    assert FAKE_SECRET not in json.dumps(failure)
    assert unknown_in not in mine
    assert missing_in not in mine
    # Failures that name no known tenant go to the platform chain.
    (unknown,) = await platform_events(services, unknown_in)
    assert unknown["payload"] == {"method": "api_key", "reason": "unknown_prefix", "key_prefix": "zzzzzzzzzzzz"}
    (missing,) = await platform_events(services, missing_in)
    assert missing["payload"] == {"method": "none", "reason": "missing"}
    assert (await services.audit.verify(PLATFORM_CHAIN)).ok


async def test_platform_operations_are_on_the_platform_chain(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    info, platform_key = await services.platform_keys.create("audit-test", request_id=rid("pk"))
    op = {"Authorization": f"Bearer {platform_key}"}
    name = f"audited-{uuid.uuid4().hex[:8]}"
    create_in, suspend_in = rid("create-tenant"), rid("suspend")
    tenant = await client.post("/v1/platform/tenants", json={"name": name}, headers={**op, "X-Request-ID": create_in})
    tenant_id = tenant.json()["id"]
    suspend = await client.post(f"/v1/platform/tenants/{tenant_id}/suspend", headers={**op, "X-Request-ID": suspend_in})
    assert suspend.status_code == 200
    await client.post(f"/v1/platform/tenants/{tenant_id}/resume", headers=op)
    await services.platform_keys.revoke(info.id)

    # Each platform request's authentication names the platform key that made it.
    (auth,) = [e for e in await platform_events(services, create_in) if e["action"] == "auth.succeeded"]
    assert (auth["principal_id"], auth["principal_kind"]) == (str(info.id), "platform_key")
    wanted = {"platform_key.created", "tenant.created", "tenant.suspended", "tenant.resumed", "platform_key.revoked"}
    ours = {tenant_id, str(info.id)}
    actions = [
        e["action"] async for e in services.audit.export(PLATFORM_CHAIN)
        if e["action"] in wanted and ours & {e["payload"].get("tenant_id"), e["payload"].get("key_id")}
    ]  # fmt: skip
    assert actions == [
        "platform_key.created", "tenant.created", "tenant.suspended", "tenant.resumed", "platform_key.revoked",
    ]  # fmt: skip

    # A suspended tenant's refused key is recorded on that tenant's chain.
    await services.tenants.set_status(tenant_a.id, TenantStatus.SUSPENDED)
    refused_in = rid("suspended")
    headers = {**tenant_a.headers(), "X-Request-ID": refused_in}
    assert (await client.get("/v1/whoami", headers=headers)).status_code == 401
    await services.tenants.set_status(tenant_a.id, TenantStatus.ACTIVE)
    (refusal,) = [e for e in await events(client, tenant_a) if e["request_id"] == refused_in]
    assert refusal["payload"]["reason"] == "tenant_suspended"


@pytest.mark.parametrize("action", ["key.created", "auth.succeeded"])
async def test_the_chain_behind_the_api_verifies(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture, action: str
) -> None:
    await create_key(client, tenant_a, rid("verify"))
    assert await events(client, tenant_a, action=action)
    report = await services.audit.verify(tenant_a.id)
    assert report.ok
    assert report.events_checked >= 4


async def test_platform_tenant_operations_name_the_operator_and_request(
    client: httpx.AsyncClient, services: Services
) -> None:
    info, key = await services.platform_keys.create("ops")
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": "req-create-tenant"}
    created = await client.post("/v1/platform/tenants", json={"name": f"op-{uuid.uuid4().hex[:8]}"}, headers=headers)
    assert created.status_code == 201
    events = [
        e async for e in services.audit.export(uuid.UUID(int=0))
        if e["action"] == "tenant.created" and e["request_id"] == "req-create-tenant"
    ]  # fmt: skip
    assert [e["principal_id"] for e in events] == [str(info.id)]
