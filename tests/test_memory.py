"""Tenant memory: create-or-update by key, every version kept, ranked full-text search, isolation."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tenantgate.errors import InvalidInput, NotFound
from tenantgate.installation import Services
from tests.conftest import DatabaseFixture, TenantFixture
from tests.state_helpers import actions, as_app, member_key


async def test_put_creates_then_updates_and_keeps_every_version(services: Services, tenant_a: TenantFixture) -> None:
    store, ctx = services.memory, tenant_a.system
    first, change1 = await store.put(ctx, "customer/acme", "Prefers email.", title="Acme", tags=["crm", "acme"])
    second, change2 = await store.put(ctx, "customer/acme", "Prefers phone calls.", title="Acme", tags=["crm"])
    same, change3 = await store.put(ctx, "customer/acme", "Prefers phone calls.", title="Acme", tags=["crm"])
    assert (change1, change2, change3) == ("created", "updated", "unchanged")
    assert first.id == second.id == same.id
    assert (first.version, second.version, same.version) == (1, 2, 2)
    assert first.tags == ("acme", "crm")  # sorted, deduplicated
    versions = await store.versions(ctx, first.id)
    assert [(v.version, v.content, v.change) for v in versions] == [
        (1, "Prefers email.", "created"),
        (2, "Prefers phone calls.", "updated"),
    ]
    assert (await store.get(ctx, first.id)).content == "Prefers phone calls."
    assert (await store.get_by_key(ctx, "customer/acme")).version == 2
    assert await actions(services, tenant_a, "memory.") == ["memory.created", "memory.updated"]


async def test_audit_events_record_sizes_not_content(services: Services, tenant_a: TenantFixture) -> None:
    await services.memory.put(tenant_a.system, "secret-plan", "The launch date is 2027-04-01.")
    await services.audit.drain()
    [record] = [r for r in await services.audit.page(tenant_a.system) if r.action == "memory.created"]
    assert record.payload is not None
    assert record.payload["content_chars"] == len("The launch date is 2027-04-01.")
    assert "2027" not in str(dict(record.payload))


async def test_search_is_ranked_full_text_with_web_syntax_and_tags(services: Services, tenant_a: TenantFixture) -> None:
    store, ctx = services.memory, tenant_a.system
    await store.put(ctx, "invoices", "Invoices are paid within 30 days.", title="Invoice policy", tags=["finance"])
    await store.put(ctx, "travel", "Book trains for trips under 500 km; invoices go to finance.", tags=["travel"])
    await store.put(ctx, "lunch", "The team lunch is on Fridays.")
    hits = await store.search(ctx, "invoice")
    assert [h.key for h in hits] == ["invoices", "travel"]  # the title match ranks first
    assert hits[0].rank > hits[1].rank > 0
    assert [h.key for h in await store.search(ctx, "invoice -trains")] == ["invoices"]
    assert [h.key for h in await store.search(ctx, '"team lunch"')] == ["lunch"]
    assert [h.key for h in await store.search(ctx, "invoice", tags=["travel"])] == ["travel"]
    assert [h.key for h in await store.search(ctx, "invoice", max_results=1)] == ["invoices"]
    assert await store.search(ctx, "the") == []  # stop words alone match nothing, and do not fail


@pytest.mark.parametrize(
    ("key", "content", "tags", "message"),
    [
        ("", "x", [], "key must be 1 to 200"),
        ("has space", "x", [], "letters, digits"),
        ("k" * 201, "x", [], "key must be 1 to 200"),
        ("ok", "", [], "content must be 1 to 20000"),
        ("ok", "x" * 20_001, [], "content must be 1 to 20000"),
        ("ok", "nul \x00 byte", [], "NUL"),
        ("ok", "x", ["Not Lower"], "Tags are lowercase"),
        ("ok", "x", [f"t{i}" for i in range(21)], "At most 20 tags"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    services: Services, tenant_a: TenantFixture, key: str, content: str, tags: list[str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        await services.memory.put(tenant_a.system, key, content, tags=tags)
    assert await services.memory.recent(tenant_a.system) == []


async def test_search_refuses_empty_or_oversized_queries(services: Services, tenant_a: TenantFixture) -> None:
    for query, limit in (("  ", 5), ("x" * 501, 5), ("ok", 0), ("ok", 51)):
        with pytest.raises(InvalidInput):
            await services.memory.search(tenant_a.system, query, max_results=limit)


async def test_another_tenant_cannot_read_search_or_overwrite(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    entry, _ = await services.memory.put(tenant_a.system, "shared-key", "Tenant A's private note.")
    with pytest.raises(NotFound):
        await services.memory.get(tenant_b.system, entry.id)
    with pytest.raises(NotFound):
        await services.memory.versions(tenant_b.system, entry.id)
    assert await services.memory.search(tenant_b.system, "private note") == []
    # The same key in B is B's own entry: A's stays as it was.
    mine, change = await services.memory.put(tenant_b.system, "shared-key", "B's note.")
    assert (change, mine.version) == ("created", 1)
    assert mine.id != entry.id
    assert (await services.memory.get(tenant_a.system, entry.id)).content == "Tenant A's private note."


async def test_sql_level_isolation_and_immutable_history(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    entry, _ = await services.memory.put(tenant_a.system, "k", "A's words")
    with as_app(test_db, tenant_b.id) as conn:
        assert conn.execute("SELECT count(*) FROM tenantgate.memory_entries WHERE id = %s", [entry.id]).fetchone() == (
            0,
        )
        assert conn.execute("SELECT count(*) FROM tenantgate.memory_versions").fetchone() == (0,)
        updated = conn.execute("UPDATE tenantgate.memory_entries SET content = 'x' WHERE id = %s", [entry.id])
        assert updated.rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO tenantgate.memory_entries (tenant_id, id, key, content, version, created_by, updated_by)"
                " VALUES (%s, gen_random_uuid(), 'evil', 'x', 1, gen_random_uuid(), gen_random_uuid())",
                [tenant_a.id],
            )
    # History is append-only for the app role, even inside the owning tenant.
    with as_app(test_db, tenant_a.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE tenantgate.memory_versions SET content = 'rewritten'")
    with as_app(test_db, tenant_a.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM tenantgate.memory_entries")


async def test_memory_over_http_for_members_and_not_across_tenants(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    entry, _ = await services.memory.put(tenant_a.system, "runbook", "Restart the worker with care.", tags=["ops"])
    await services.memory.put(tenant_a.system, "runbook", "Restart the worker gently.", tags=["ops"])
    member = await member_key(services, tenant_a)
    listed = await client.get("/v1/memory", headers=tenant_a.headers(member))
    found = await client.get("/v1/memory/search", params={"q": "restart worker"}, headers=tenant_a.headers(member))
    got = await client.get(f"/v1/memory/{entry.id}", headers=tenant_a.headers(member))
    versions = await client.get(f"/v1/memory/{entry.id}/versions", headers=tenant_a.headers(member))
    assert [e["key"] for e in listed.json()] == ["runbook"]
    assert [h["key"] for h in found.json()] == ["runbook"]
    assert (got.json()["content"], got.json()["version"]) == ("Restart the worker gently.", 2)
    assert [v["content"] for v in versions.json()] == ["Restart the worker with care.", "Restart the worker gently."]

    other = tenant_b.headers()
    assert (await client.get(f"/v1/memory/{entry.id}", headers=other)).status_code == 404
    assert (await client.get(f"/v1/memory/{entry.id}/versions", headers=other)).status_code == 404
    assert (await client.get("/v1/memory/search", params={"q": "restart"}, headers=other)).json() == []
    assert (await client.get("/v1/memory", headers=other)).json() == []
    assert (await client.get("/v1/memory/search", params={"q": ""}, headers=other)).status_code == 422
    assert (await client.get("/v1/memory")).status_code == 401
