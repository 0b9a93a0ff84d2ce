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


async def test_openapi_documents_every_route_and_the_error_shape(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/v1/whoami", "/v1/keys", "/v1/keys/{key_id}/rotate", "/v1/keys/{key_id}/revoke", "/v1/principals",
            "/v1/platform/tenants", "/healthz"} <= set(paths)  # fmt: skip
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "message"}
    for path, operations in paths.items():
        if path.startswith("/v1/"):
            for method, operation in operations.items():
                assert "401" in operation["responses"], (method, path)


async def test_unknown_routes_answer_with_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    wrong_method = await client.delete("/v1/whoami")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")


def test_every_refusal_code_has_a_deliberate_status() -> None:
    from tenantgate.api import status_for

    assert [status_for(code) for code in ("capability_denied", "egress_denied", "policy_unavailable")] == [
        403,
        403,
        503,
    ]
