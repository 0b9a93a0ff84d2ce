from __future__ import annotations

import httpx

from tests.conftest import TenantFixture


async def test_whoami_answers_for_the_key_owner(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    response = await client.get("/v1/whoami", headers=tenant_a.headers())
    assert response.status_code == 200
    assert response.json() == {
        "tenant_id": str(tenant_a.id),
        "principal_id": str(tenant_a.owner_id),
        "kind": "user",
        "roles": ["owner"],
    }
