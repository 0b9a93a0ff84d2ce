"""Credentials over HTTP: secrets go in and never come out; roles; other tenants see nothing, in HTTP and in SQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from tenantgate.api import create_app
from tenantgate.context import PrincipalKind, Role
from tenantgate.errors import NotFound
from tenantgate.installation import Services
from tenantgate.vault import CredentialStore, Vault, VaultTransit
from tests.conftest import TenantFixture

SECRET = {"api_key": "sk-proj-" + uuid.uuid4().hex + uuid.uuid4().hex}
BODY = {"name": "openai", "kind": "api_key", "provider": "openai", "secret": SECRET, "metadata": {"org": "acme"}}


async def create(client: httpx.AsyncClient, tenant: TenantFixture, **overrides: object) -> httpx.Response:
    return await client.post("/v1/credentials", json={**BODY, **overrides}, headers=tenant.headers())


async def member_key(services: Services, tenant: TenantFixture) -> str:
    member = await services.principals.create(
        tenant.system, name="member", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
    )
    return (await services.keys.create(tenant.system, principal_id=member.id)).key


async def test_create_list_update_replace_delete_never_return_the_secret(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    created = await create(client, tenant_a)
    assert created.status_code == 201, created.text
    body = created.json()
    cid = body["id"]
    assert (body["name"], body["kind"], body["provider"], body["fields"], body["metadata"]) == (
        "openai", "api_key", "openai", ["api_key"], {"org": "acme"},
    )  # fmt: skip
    assert "secret" not in body
    responses = [created]
    responses.append(await client.get("/v1/credentials", headers=tenant_a.headers()))
    responses.append(await client.get(f"/v1/credentials/{cid}", headers=tenant_a.headers()))
    assert [c["id"] for c in responses[-2].json()] == [cid]

    patched = await client.patch(f"/v1/credentials/{cid}", json={"metadata": {"org": "acme", "env": "prod"}},
                                 headers=tenant_a.headers())  # fmt: skip
    assert patched.json()["metadata"] == {"org": "acme", "env": "prod"}
    new_secret = {"api_key": "sk-proj-rotated-" + uuid.uuid4().hex}
    replaced = await client.put(
        f"/v1/credentials/{cid}/secret", json={"secret": new_secret}, headers=tenant_a.headers()
    )
    assert replaced.status_code == 200
    responses += [patched, replaced]
    opened = await services.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert dict(opened.secret) == new_secret
    assert new_secret["api_key"] not in repr(opened)  # the secret is not in the dataclass repr either

    deleted = await client.delete(f"/v1/credentials/{cid}", headers=tenant_a.headers())
    assert deleted.status_code == 200
    gone = await client.get(f"/v1/credentials/{cid}", headers=tenant_a.headers())
    assert (gone.status_code, gone.json()["code"]) == (404, "not_found")
    for response in [*responses, deleted]:
        assert SECRET["api_key"] not in response.text
        assert new_secret["api_key"] not in response.text

    records = await services.audit.page(tenant_a.system, limit=500)
    actions = [r.action for r in records if r.action.startswith("credential.")]
    assert actions == [
        "credential.created", "credential.updated", "credential.secret_replaced", "credential.used",
        "credential.deleted",
    ]  # fmt: skip
    assert all(SECRET["api_key"] not in str(r.payload) and new_secret["api_key"] not in str(r.payload) for r in records)
    used = next(r for r in records if r.action == "credential.used")
    assert used.payload is not None
    assert (used.tool, used.payload["credential_id"]) == ("t@v1", cid)


async def test_bad_input_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    cases = [
        {"secret": {"token": "x"}},  # api_key needs the api_key field
        {"secret": {}},
        {"secret": {"api_key": ""}},
        {"secret": {"API KEY": "x", "api_key": "y"}},
        {"kind": "ssh_key"},
        {"name": "Has Spaces"},
        {"tenant_id": str(uuid.uuid4())},  # the tenant comes from the credential, never the body
        {"metadata": "not an object"},
    ]
    for overrides in cases:
        response = await create(client, tenant_a, **overrides)
        assert (response.status_code, response.json()["code"]) == (422, "invalid_input"), overrides
    assert (await client.get("/v1/credentials", headers=tenant_a.headers())).json() == []
    assert (await create(client, tenant_a)).status_code == 201
    duplicate = await create(client, tenant_a)
    assert (duplicate.status_code, duplicate.json()["code"]) == (409, "conflict")


async def test_members_list_but_cannot_manage(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    cid = (await create(client, tenant_a)).json()["id"]
    key = await member_key(services, tenant_a)
    assert [c["id"] for c in (await client.get("/v1/credentials", headers=tenant_a.headers(key))).json()] == [cid]
    attempts = [
        await client.post("/v1/credentials", json={**BODY, "name": "mine"}, headers=tenant_a.headers(key)),
        await client.put(f"/v1/credentials/{cid}/secret", json={"secret": SECRET}, headers=tenant_a.headers(key)),
        await client.patch(f"/v1/credentials/{cid}", json={"metadata": {}}, headers=tenant_a.headers(key)),
        await client.delete(f"/v1/credentials/{cid}", headers=tenant_a.headers(key)),
    ]
    assert [(r.status_code, r.json()["code"]) for r in attempts] == [(403, "role_required")] * 4
    assert [c["metadata"] for c in (await client.get("/v1/credentials", headers=tenant_a.headers())).json()] == [
        {"org": "acme"}
    ]


async def test_other_tenant_sees_and_changes_nothing_over_http(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    cid = (await create(client, tenant_a)).json()["id"]
    b = tenant_b.headers()
    assert (await client.get("/v1/credentials", headers=b)).json() == []
    responses = [
        await client.get(f"/v1/credentials/{cid}", headers=b),
        await client.put(f"/v1/credentials/{cid}/secret", json={"secret": {"api_key": "stolen"}}, headers=b),
        await client.patch(f"/v1/credentials/{cid}", json={"metadata": {"pwned": True}}, headers=b),
        await client.delete(f"/v1/credentials/{cid}", headers=b),
    ]
    assert [(r.status_code, r.json()["code"]) for r in responses] == [(404, "not_found")] * 4
    # B's tools cannot open A's credential by name either.
    with pytest.raises(NotFound):
        await services.credentials.use(tenant_b.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    # B may use the same name for its own credential; A's is untouched.
    assert (await create(client, tenant_b)).status_code == 201
    (mine,) = (await client.get("/v1/credentials", headers=tenant_a.headers())).json()
    assert (mine["id"], mine["metadata"]) == (cid, {"org": "acme"})


async def test_other_tenant_sees_nothing_in_sql(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    cid = uuid.UUID((await create(client, tenant_a)).json()["id"])
    async with services.db.tenant(tenant_b.system) as conn:
        # No WHERE tenant_id at all: row-level security still shows B nothing of A's.
        assert (await conn.execute(sa.text("SELECT count(*) FROM tenantgate.credentials"))).scalar_one() == 0
        assert (await conn.execute(sa.text("SELECT count(*) FROM tenantgate.tenant_data_keys"))).scalar_one() == 0
        changed = await conn.execute(sa.text("UPDATE tenantgate.credentials SET metadata = '{}' WHERE id = :i"),
                                     {"i": cid})  # fmt: skip
        assert changed.rowcount == 0
    with pytest.raises(DBAPIError, match="row-level security"):
        async with services.db.tenant(tenant_b.system) as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO tenantgate.tenant_data_keys (tenant_id, id, provider, kek_id, wrapped_key)"
                    " VALUES (:a, :i, 'local', 'x', '\\x00')"
                ),
                {"a": tenant_a.id, "i": uuid.uuid4()},
            )
    async with services.db.tenant(tenant_a.system) as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM tenantgate.credentials"))).scalar_one() == 1


@pytest.fixture
async def broken_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    # The same installation with a key provider that does not answer (nothing listens on port 9 here).
    down = VaultTransit(addr="http://127.0.0.1:9", token="hvs.x", key="tenantgate", timeout_s=1)
    vault = Vault(db=services.db, provider=down, audit=services.audit)
    broken = dataclasses.replace(services, vault=vault, credentials=CredentialStore(db=services.db, vault=vault,
                                                                                   audit=services.audit))  # fmt: skip
    app = create_app(broken, dispose_on_shutdown=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenantgate.test") as c:
        yield c


async def test_unreachable_key_provider_is_503_and_stores_nothing(
    broken_client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    response = await broken_client.post("/v1/credentials", json=BODY, headers=tenant_a.headers())
    assert (response.status_code, response.json()["code"]) == (503, "key_provider_unavailable")
    assert SECRET["api_key"] not in response.text
    assert await services.credentials.list(tenant_a.system) == []
