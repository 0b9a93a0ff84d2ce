"""Regressions for what the API fuzzer (tests/test_api_fuzz.py) found: each answer is a documented status and shape."""

from __future__ import annotations

import httpx

from tests.conftest import TenantFixture


def assert_invalid_input(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    assert body["code"] == "invalid_input"
    assert isinstance(body["message"], str)
    return body


async def test_nul_in_text_is_invalid_input_and_nothing_is_stored(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    # Was a 500: PostgreSQL text cannot hold NUL, and psycopg refused it deep in the store.
    body = assert_invalid_input(
        await client.post("/v1/sessions", json={"title": "a\u0000b"}, headers=tenant_a.headers())
    )
    assert "NUL" in str(body["message"])
    # In a jsonb column (the server refuses \u0000 there) and in a query parameter, the same answer.
    created = await client.post(
        "/v1/credentials",
        json={"name": "nul-meta", "kind": "api_key", "secret": {"api_key": "k" * 20}, "metadata": {"note": "x\u0000"}},
        headers=tenant_a.headers(),
    )
    assert_invalid_input(created)
    listed = await client.get("/v1/credentials", headers=tenant_a.headers())
    assert [c["name"] for c in listed.json()] == []  # nothing was changed
    assert_invalid_input(await client.get("/v1/audit", params={"action": "key\u0000"}, headers=tenant_a.headers()))


async def test_an_unreadable_body_is_a_documented_422(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    # Was FastAPI's 400 ("There was an error parsing the body"), which no operation documents.
    response = await client.post(
        "/v1/principals",
        content=b'{"name": "\xff\xfe"}',
        headers={**tenant_a.headers(), "Content-Type": "application/json"},
    )
    body = assert_invalid_input(response)
    assert body["errors"] == [
        {"loc": ["body"], "msg": "There was an error parsing the body", "type": "body_unreadable"}
    ]


async def test_method_not_allowed_says_which_are(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    # The Allow header of Starlette's 405 was dropped by the error handler.
    response = await client.delete("/v1/whoami", headers=tenant_a.headers())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["code"] == "method_not_allowed"


async def test_service_validation_errors_have_the_request_validation_shape(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    # Skill front matter and alert settings listed their errors without "type", unlike every other 422.
    skill = await client.post(
        "/v1/skills", json={"source": "---\nname: ok\n---\nno description\n"}, headers=tenant_a.headers()
    )
    settings = await client.put("/v1/alert-settings", json={"no_such_rule": {}}, headers=tenant_a.headers())
    for response in (skill, settings):
        errors = assert_invalid_input(response)["errors"]
        assert isinstance(errors, list)
        assert errors
        assert all(set(e) == {"loc", "msg", "type"} for e in errors), errors


async def test_the_whatsapp_handshake_refuses_with_the_documented_json(client: httpx.AsyncClient) -> None:
    # Documented as text/plain (the echo's type) although every refusal is the JSON error body.
    response = await client.get("/v1/webhooks/whatsapp/not-an-endpoint", params={"hub.mode": "subscribe"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == "unauthenticated"


async def test_numbers_beyond_the_columns_are_invalid_input(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    # after_seq had no upper bound: 2**80 reached PostgreSQL as a bigint and came back a 500.
    assert_invalid_input(await client.get("/v1/audit", params={"after_seq": 2**80}, headers=tenant_a.headers()))
    assert (
        await client.get("/v1/audit", params={"after_seq": 2**63 - 1}, headers=tenant_a.headers())
    ).status_code == 200
    created = await client.post("/v1/sessions", json={"title": "t"}, headers=tenant_a.headers())
    missing = "00000000-0000-4000-8000-000000000000"
    restore = await client.post(f"/v1/memory/{missing}/restore", json={"version": 2**40}, headers=tenant_a.headers())
    assert_invalid_input(restore)
    artifact = await client.post("/v1/artifacts", content=b"hello", headers=tenant_a.headers())
    url = await client.post(
        f"/v1/artifacts/{artifact.json()['id']}/url", json={"ttl_s": 2**70}, headers=tenant_a.headers()
    )
    assert created.status_code == 201
    assert url.status_code == 422, url.text
