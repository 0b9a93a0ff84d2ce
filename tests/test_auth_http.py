"""Authentication and tenant isolation over HTTP."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tenantgate.api import create_app
from tenantgate.auth import Authenticator
from tenantgate.context import PrincipalKind, Role
from tenantgate.errors import InvalidInput
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.store import Database
from tenantgate.tenants import TenantStatus
from tests.conftest import DatabaseFixture, TenantFixture

FAKE_SECRET = "A" * 43


def _unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def _create_key(client: httpx.AsyncClient, tenant: TenantFixture, **body: object) -> dict[str, object]:
    response = await client.post("/v1/keys", json=body, headers=tenant.headers())
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-key", f"Bearer tg_short_{FAKE_SECRET}", "tg_x"],
)
async def test_missing_or_malformed_credentials_are_refused(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    _unauthenticated(await client.get("/v1/whoami", headers=headers))


async def test_unknown_prefix_and_wrong_secret_look_the_same(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    prefix = tenant_a.owner_key.split("_")[1]
    unknown = await client.get("/v1/whoami", headers={"Authorization": f"Bearer tg_zzzzzzzzzzzz_{FAKE_SECRET}"})
    wrong = await client.get("/v1/whoami", headers={"Authorization": f"Bearer tg_{prefix}_{FAKE_SECRET}"})
    _unauthenticated(unknown)
    _unauthenticated(wrong)
    assert unknown.json() == wrong.json()


async def test_tenant_a_never_sees_tenant_b(
    client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    principals = (await client.get("/v1/principals", headers=tenant_a.headers())).json()
    keys = (await client.get("/v1/keys", headers=tenant_a.headers())).json()
    assert {p["id"] for p in principals} == {str(tenant_a.owner_id)}
    assert {k["principal_id"] for k in keys} == {str(tenant_a.owner_id)}
    assert all("secret" not in json.dumps(k) and "key" not in k for k in keys)


async def test_tenant_a_cannot_touch_tenant_b_keys_or_principals(
    client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    b_keys = (await client.get("/v1/keys", headers=tenant_b.headers())).json()
    b_key_id = b_keys[0]["id"]
    revoke = await client.post(f"/v1/keys/{b_key_id}/revoke", headers=tenant_a.headers())
    rotate = await client.post(f"/v1/keys/{b_key_id}/rotate", json={}, headers=tenant_a.headers())
    steal = await client.post("/v1/keys", json={"principal_id": str(tenant_b.owner_id)}, headers=tenant_a.headers())
    assert [r.status_code for r in (revoke, rotate, steal)] == [404, 404, 404]
    assert (await client.get("/v1/whoami", headers=tenant_b.headers())).status_code == 200
    assert len((await client.get("/v1/keys", headers=tenant_b.headers())).json()) == 1


async def test_client_supplied_tenant_ids_are_ignored_or_refused(
    client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    spoof = {**tenant_a.headers(), "X-Tenant-ID": str(tenant_b.id), "X-Tenant": str(tenant_b.id)}
    whoami = await client.get("/v1/whoami", params={"tenant_id": str(tenant_b.id)}, headers=spoof)
    assert whoami.json()["tenant_id"] == str(tenant_a.id)
    principals = await client.get("/v1/principals", params={"tenant_id": str(tenant_b.id)}, headers=spoof)
    assert {p["id"] for p in principals.json()} == {str(tenant_a.owner_id)}
    # In a body, a tenant id is refused outright, and nothing is created.
    created = await client.post("/v1/keys", json={"tenant_id": str(tenant_b.id)}, headers=spoof)
    assert created.status_code == 422
    assert created.json()["code"] == "invalid_input"
    assert len((await client.get("/v1/keys", headers=tenant_b.headers())).json()) == 1
    assert len((await client.get("/v1/keys", headers=tenant_a.headers())).json()) == 1


async def test_created_key_works_and_is_shown_once(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    created = await _create_key(client, tenant_a, name="ci", roles=["member"])
    key = str(created["key"])
    assert key.startswith("tg_")
    whoami = await client.get("/v1/whoami", headers=tenant_a.headers(key))
    assert whoami.json()["roles"] == ["member"]
    listed = (await client.get("/v1/keys", headers=tenant_a.headers())).json()
    assert key not in json.dumps(listed)
    assert {k["name"] for k in listed} == {"", "ci"}


async def test_revoked_key_is_refused_on_the_next_request(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    created = await _create_key(client, tenant_a)
    key = str(created["key"])
    assert (await client.get("/v1/whoami", headers=tenant_a.headers(key))).status_code == 200
    revoked = await client.post(f"/v1/keys/{created['id']}/revoke", headers=tenant_a.headers())
    assert revoked.json()["active"] is False
    _unauthenticated(await client.get("/v1/whoami", headers=tenant_a.headers(key)))


async def test_expired_key_is_refused(
    client: httpx.AsyncClient, tenant_a: TenantFixture, test_db: DatabaseFixture
) -> None:
    created = await _create_key(client, tenant_a, expires_in_seconds=3600)
    key = str(created["key"])
    assert (await client.get("/v1/whoami", headers=tenant_a.headers(key))).status_code == 200
    with psycopg.connect(test_db.urls.admin) as conn:
        conn.execute(
            "UPDATE tenantgate.api_keys SET expires_at = now() - interval '1 second' WHERE id = %s", [created["id"]]
        )
    _unauthenticated(await client.get("/v1/whoami", headers=tenant_a.headers(key)))


async def test_expiry_in_the_past_is_refused(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await client.post("/v1/keys", json={"expires_at": past}, headers=tenant_a.headers())
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"


async def test_rotated_key_works_until_its_overlap_ends(
    client: httpx.AsyncClient, tenant_a: TenantFixture, services: Services, installation: Installation
) -> None:
    old = await _create_key(client, tenant_a)
    rotated = await client.post(
        f"/v1/keys/{old['id']}/rotate", json={"overlap_seconds": 3600}, headers=tenant_a.headers()
    )
    assert rotated.status_code == 201
    new = rotated.json()
    assert new["rotated_from"] == old["id"]
    for key in (old["key"], new["key"]):
        assert (await client.get("/v1/whoami", headers=tenant_a.headers(str(key)))).status_code == 200

    # Two hours later (a clock, not a sleep): the old key is dead, the new one lives.
    later = Authenticator(
        db=services.db,
        pepper=installation.pepper,
        mode=services.settings.mode,
        clock=lambda: datetime.now(UTC) + timedelta(hours=2),
    )
    ctx = await later.authenticate(f"Bearer {new['key']}", request_id="t")
    assert ctx.tenant_id == tenant_a.id
    with pytest.raises(Exception, match="Invalid, expired or revoked"):
        await later.authenticate(f"Bearer {old['key']}", request_id="t")


async def test_rotation_with_zero_overlap_kills_the_old_key_at_once(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    old = await _create_key(client, tenant_a)
    rotated = await client.post(f"/v1/keys/{old['id']}/rotate", json={"overlap_seconds": 0}, headers=tenant_a.headers())
    _unauthenticated(await client.get("/v1/whoami", headers=tenant_a.headers(str(old["key"]))))
    assert (await client.get("/v1/whoami", headers=tenant_a.headers(rotated.json()["key"]))).status_code == 200


async def test_members_cannot_manage_keys_and_admins_cannot_mint_owners(
    client: httpx.AsyncClient, tenant_a: TenantFixture, services: Services
) -> None:
    member = await services.principals.create(
        tenant_a.system, name="m", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
    )
    admin = await services.principals.create(
        tenant_a.system, name="a", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN})
    )
    member_key = (await services.keys.create(tenant_a.system, principal_id=member.id)).key
    admin_key = (await services.keys.create(tenant_a.system, principal_id=admin.id)).key

    listed = await client.get("/v1/keys", headers=tenant_a.headers(member_key))
    assert (listed.status_code, listed.json()["code"]) == (403, "role_required")
    minted = await client.post(
        "/v1/keys", json={"principal_id": str(tenant_a.owner_id)}, headers=tenant_a.headers(admin_key)
    )
    assert (minted.status_code, minted.json()["code"]) == (403, "role_required")
    escalate = await client.post(
        "/v1/principals", json={"name": "x", "roles": ["owner"]}, headers=tenant_a.headers(admin_key)
    )
    assert escalate.status_code == 403
    ok = await client.post("/v1/keys", json={"principal_id": str(member.id)}, headers=tenant_a.headers(admin_key))
    assert ok.status_code == 201


async def test_key_roles_are_capped_by_the_membership(
    client: httpx.AsyncClient, tenant_a: TenantFixture, test_db: DatabaseFixture
) -> None:
    created = await _create_key(client, tenant_a, roles=["owner"])
    # Demote the principal: its existing key must not keep the old role.
    with psycopg.connect(test_db.urls.admin) as conn:
        conn.execute(
            "UPDATE tenantgate.memberships SET roles = ARRAY['member'] WHERE tenant_id = %s AND principal_id = %s",
            [tenant_a.id, tenant_a.owner_id],
        )
    _unauthenticated(await client.get("/v1/whoami", headers=tenant_a.headers(str(created["key"]))))


async def test_suspended_tenant_is_refused_until_resumed(
    client: httpx.AsyncClient, tenant_a: TenantFixture, services: Services
) -> None:
    await services.tenants.set_status(tenant_a.id, TenantStatus.SUSPENDED)
    _unauthenticated(await client.get("/v1/whoami", headers=tenant_a.headers()))
    await services.tenants.set_status(tenant_a.id, TenantStatus.ACTIVE)
    assert (await client.get("/v1/whoami", headers=tenant_a.headers())).status_code == 200


async def test_last_used_at_is_recorded(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    created = await _create_key(client, tenant_a)
    assert created["last_used_at"] is None
    await client.get("/v1/whoami", headers=tenant_a.headers(str(created["key"])))
    listed = {k["id"]: k for k in (await client.get("/v1/keys", headers=tenant_a.headers())).json()}
    assert listed[created["id"]]["last_used_at"] is not None


async def test_platform_flow_and_credential_separation(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    _, platform_key = await services.platform_keys.create("test")
    op = {"Authorization": f"Bearer {platform_key}"}
    # Tenant keys cannot reach platform endpoints, and platform keys are not tenant credentials.
    _unauthenticated(await client.get("/v1/platform/tenants", headers=tenant_a.headers()))
    _unauthenticated(await client.get("/v1/whoami", headers=op))

    name = f"plat-{uuid.uuid4().hex[:8]}"
    tenant = (await client.post("/v1/platform/tenants", json={"name": name}, headers=op)).json()
    duplicate = await client.post("/v1/platform/tenants", json={"name": name}, headers=op)
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "conflict")
    principal = await client.post(
        f"/v1/platform/tenants/{tenant['id']}/principals", json={"name": "Ada", "kind": "user", "roles": ["owner"]},
        headers=op,
    )  # fmt: skip
    assert principal.status_code == 201
    key = await client.post(
        f"/v1/platform/tenants/{tenant['id']}/keys", json={"principal_id": principal.json()["id"]}, headers=op
    )
    whoami = (await client.get("/v1/whoami", headers={"Authorization": f"Bearer {key.json()['key']}"})).json()
    assert whoami == {
        "tenant_id": tenant["id"],
        "principal_id": principal.json()["id"],
        "kind": "user",
        "roles": ["owner"],
    }

    listed = (await client.get("/v1/platform/tenants", headers=op)).json()
    assert {tenant["id"], str(tenant_a.id)} <= {t["id"] for t in listed}


async def test_invalid_tenant_names_are_refused(client: httpx.AsyncClient, services: Services) -> None:
    _, platform_key = await services.platform_keys.create("test")
    op = {"Authorization": f"Bearer {platform_key}"}
    for bad in ["", "UPPER", "-dash", "a" * 64, "sp ace", "x;drop"]:
        response = await client.post("/v1/platform/tenants", json={"name": bad}, headers=op)
        assert (response.status_code, response.json()["code"]) == (422, "invalid_input"), bad


async def test_revoked_platform_key_is_refused(client: httpx.AsyncClient, services: Services) -> None:
    info, platform_key = await services.platform_keys.create("temp")
    op = {"Authorization": f"Bearer {platform_key}"}
    assert (await client.get("/v1/platform/tenants", headers=op)).status_code == 200
    await services.platform_keys.revoke(info.id)
    _unauthenticated(await client.get("/v1/platform/tenants", headers=op))


async def test_database_down_fails_closed(installation: Installation, tenant_a: TenantFixture) -> None:
    dead = "postgresql://nobody:x@127.0.0.1:1/nothing?connect_timeout=2"
    db = Database(app_url=dead, admin_url=dead, roles=installation.roles)
    app = create_app(Services.build(installation, db=db))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/v1/whoami", headers=tenant_a.headers())
        health = await client.get("/healthz")
    await db.dispose()
    assert (response.status_code, response.json()["code"]) == (503, "database_unavailable")
    assert health.status_code == 503


async def test_failed_auth_is_logged_with_request_id_but_never_the_secret(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        prefix = tenant_a.owner_key.split("_")[1]
        presented = f"tg_{prefix}_{'S' * 43}"
        response = await client.get(
            "/v1/whoami", headers={"Authorization": f"Bearer {presented}", "X-Request-ID": "req-42"}
        )
        ok = await client.get("/v1/whoami", headers=tenant_a.headers())
    finally:
        configure_logging("warning")
    assert response.headers["x-request-id"] == "req-42"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failures = [line for line in lines if line["event"] == "auth.failed"]
    assert failures == [
        {"event": "auth.failed", "level": "warning", "method": "api_key", "reason": "bad_secret",
         "key_prefix": prefix, "request_id": "req-42", "timestamp": failures[0]["timestamp"]}
    ]  # fmt: skip
    requests = [line for line in lines if line["event"] == "request"]
    assert requests[-1]["tenant_id"] == str(tenant_a.id)
    assert requests[-1]["request_id"] == ok.headers["x-request-id"]
    assert "S" * 43 not in stream.getvalue()
    assert tenant_a.owner_key not in stream.getvalue()


async def test_a_key_is_rotated_at_most_once(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    old = await _create_key(client, tenant_a)
    first = await client.post(f"/v1/keys/{old['id']}/rotate", json={}, headers=tenant_a.headers())
    second = await client.post(f"/v1/keys/{old['id']}/rotate", json={}, headers=tenant_a.headers())
    assert first.status_code == 201
    assert (second.status_code, second.json()["code"]) == (409, "conflict")
    assert len((await client.get("/v1/keys", headers=tenant_a.headers())).json()) == 3  # fixture key, old, new


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "malformed_header"),
        ("Bearer tg_short_x", "malformed_key"),
        ("Bearer not-a-key-or-jwt", "unrecognised_credential"),
        (f"Bearer tg_zzzzzzzzzzzz_{FAKE_SECRET}", "unknown_prefix"),
        (f"Bearer tgp_zzzzzzzzzzzz_{FAKE_SECRET}", "platform_key"),
    ],
)
async def test_every_refusal_is_logged_once_with_its_reason(
    client: httpx.AsyncClient, authorization: str | None, reason: str
) -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        headers = {"X-Request-ID": "req-refused"}
        if authorization is not None:
            headers["Authorization"] = authorization
        _unauthenticated(await client.get("/v1/whoami", headers=headers))
    finally:
        configure_logging("warning")
    failures = [json.loads(line) for line in stream.getvalue().splitlines() if '"auth.failed"' in line]
    assert [(f["reason"], f["request_id"]) for f in failures] == [(reason, "req-refused")]
    assert FAKE_SECRET not in stream.getvalue()


async def test_admins_cannot_revoke_owner_keys(
    client: httpx.AsyncClient, tenant_a: TenantFixture, services: Services
) -> None:
    admin = await services.principals.create(
        tenant_a.system, name="a", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN})
    )
    admin_key = (await services.keys.create(tenant_a.system, principal_id=admin.id)).key
    owner_key_id = next(
        k["id"] for k in (await client.get("/v1/keys", headers=tenant_a.headers())).json() if k["roles"] == ["owner"]
    )
    refused = await client.post(f"/v1/keys/{owner_key_id}/revoke", headers=tenant_a.headers(admin_key))
    assert (refused.status_code, refused.json()["code"]) == (403, "role_required")
    assert (await client.get("/v1/whoami", headers=tenant_a.headers())).status_code == 200


async def test_naive_expiry_is_refused(client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        await services.keys.create(
            tenant_a.system,
            principal_id=tenant_a.owner_id,
            expires_at=datetime(2099, 1, 1),  # noqa: DTZ001 - the point of the test
        )
    response = await client.post("/v1/keys", json={"expires_at": "2099-01-01T00:00:00"}, headers=tenant_a.headers())
    assert (response.status_code, response.json()["code"]) == (422, "invalid_input")
