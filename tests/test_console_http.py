"""The admin console over HTTP (no browser): sign-in, cookie flags, CSRF, role gating, tenant isolation.

Each test signs in through the real form, with its own cookie jar per person, against the suite's
app and PostgreSQL. Changes made in the console are compared with the same change made via the API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from tenantgate.audit import PLATFORM_CHAIN
from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Services
from tests.conftest import DatabaseFixture, TenantFixture
from tests.console_helpers import (
    PASSWORD,
    ConsoleUser,
    csrf_of,
    owner_user,
    page_csrf,
    sign_in,
    user_with,
    waiting_run,
)

Browser = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def browser(app: FastAPI, services: Services) -> Browser:
    """A fresh cookie jar against the app (one per person in a test); https when asked."""

    @asynccontextmanager
    async def open_browser(scheme: str = "http") -> AsyncIterator[httpx.AsyncClient]:
        async def settle(response: httpx.Response) -> None:
            await services.audit.drain()

        transport = httpx.ASGITransport(app=app, client=(f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}", 1))
        async with httpx.AsyncClient(
            transport=transport, base_url=f"{scheme}://tenantgate.test", event_hooks={"response": [settle]}
        ) as c:
            yield c

    return open_browser


async def actions(services: Services, tenant: TenantFixture, **filters: Any) -> list[Any]:
    return await services.audit.page(tenant.system, limit=500, **filters)


# --- signing in ---------------------------------------------------------------------------------


async def test_sign_in_opens_a_session_with_strict_cookie_flags(
    services: Services, tenant_a: TenantFixture, browser: Browser
) -> None:
    user = await owner_user(services, tenant_a)
    async with browser() as web:
        response = await sign_in(web, user)
        assert response.status_code == 303
        assert response.headers["location"] == "/console/approvals"
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("tg_console="))
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags
        assert "samesite=strict" in flags
        assert "path=/console" in flags
        assert "secure" not in flags  # plain HTTP here; see the TLS test below
        value = cookie.split(";")[0].removeprefix("tg_console=")
        assert value.startswith(f"{tenant_a.id}.")
        page = await web.get("/console/approvals")
        assert page.status_code == 200
        assert str(tenant_a.owner_id) in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["cache-control"] == "no-store"
    # Only a hash of the token is stored.
    token = value.split(".", 1)[1]
    async with services.db.tenant(tenant_a.system) as conn:
        stored = (await conn.exec_driver_sql(
            "SELECT token_hash FROM tenantgate.console_sessions WHERE tenant_id = %(t)s", {"t": tenant_a.id}
        )).all()  # fmt: skip
    assert len(stored) == 1
    assert token.encode() not in bytes(stored[0][0])
    logins = await actions(services, tenant_a, action="console.login")
    assert [e.principal_id for e in logins] == [tenant_a.owner_id]


async def test_the_cookie_is_secure_over_tls(services: Services, tenant_a: TenantFixture, browser: Browser) -> None:
    user = await owner_user(services, tenant_a)
    async with browser("https") as web:
        response = await sign_in(web, user)
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("tg_console="))
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize("wrong", ["password", "user", "tenant"])
async def test_a_failed_sign_in_is_refused_alike_and_audited(
    services: Services, tenant_a: TenantFixture, browser: Browser, wrong: str
) -> None:
    user = await owner_user(services, tenant_a)
    if wrong == "user":
        user = ConsoleUser(tenant_a, user.principal_id, "nobody")
    async with browser() as web:
        if wrong == "tenant":
            form = await web.get("/console/login")
            data = {"csrf": csrf_of(form.text), "tenant": "no-such-tenant-xyz", "user": "owner", "password": PASSWORD}
            response = await web.post("/console/login", data=data)
        else:
            response = await sign_in(web, user, password=PASSWORD if wrong != "password" else "wrong password!!")
        assert response.status_code == 401
        assert "Wrong tenant, user name or password." in response.text
        assert not any(h.startswith("tg_console=") for h in response.headers.get_list("set-cookie"))
        assert (await web.get("/console/approvals")).status_code == 303  # still signed out
    if wrong != "tenant":
        failed = await actions(services, tenant_a, action="auth.failed")
        assert [e.payload["method"] for e in failed] == ["console_password"]
        assert failed[0].payload["reason"] == {"password": "bad_password", "user": "unknown_user"}[wrong]


async def test_sign_in_failures_count_against_the_auth_failure_limit(
    services: Services, tenant_a: TenantFixture, browser: Browser
) -> None:
    user = await owner_user(services, tenant_a)
    limit = services.settings.auth_failures_per_minute_per_prefix
    async with browser() as web:
        for _ in range(limit):
            assert (await sign_in(web, user, password="not the password")).status_code == 401
        refused = await sign_in(web, user)  # the right password, too late
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
        assert (await web.get("/console/approvals")).status_code == 303


async def test_sign_in_needs_the_forms_csrf_token(
    services: Services, tenant_a: TenantFixture, browser: Browser
) -> None:
    user = await owner_user(services, tenant_a)
    async with browser() as web:
        await web.get("/console/login")
        data = {"tenant": tenant_a.tenant.name, "user": user.name, "password": PASSWORD}
        assert (await web.post("/console/login", data=data)).status_code == 403
        assert (await web.post("/console/login", data={**data, "csrf": "x" * 43})).status_code == 403
    assert await actions(services, tenant_a, action="console.login") == []


async def test_sign_out_ends_the_session(services: Services, tenant_a: TenantFixture, browser: Browser) -> None:
    user = await owner_user(services, tenant_a)
    async with browser() as web:
        await sign_in(web, user)
        cookie = web.cookies["tg_console"]
        out = await web.post("/console/logout", data={"csrf": await page_csrf(web)})
        assert out.status_code == 303
    async with browser() as replay:
        replay.cookies.set("tg_console", cookie, domain="tenantgate.test", path="/console")
        assert (await replay.get("/console/approvals")).status_code == 303
    assert len(await actions(services, tenant_a, action="console.logout")) == 1


async def test_a_suspended_tenant_or_new_password_ends_sessions(
    services: Services, tenant_a: TenantFixture, browser: Browser
) -> None:
    user = await owner_user(services, tenant_a)
    async with browser() as web:
        await sign_in(web, user)
        assert (await web.get("/console/usage")).status_code == 200
        await services.passwords.set(tenant_a.system, tenant_a.owner_id, PASSWORD + "!")
        assert (await web.get("/console/usage")).status_code == 303
        user = ConsoleUser(tenant_a, user.principal_id, "owner", PASSWORD + "!")
        await sign_in(web, user)
        assert (await web.get("/console/usage")).status_code == 200
        from tenantgate.tenants import TenantStatus

        await services.tenants.set_status(tenant_a.id, TenantStatus.SUSPENDED)
        try:
            assert (await web.get("/console/usage")).status_code == 303
            assert (await sign_in(web, user)).status_code == 401
        finally:
            await services.tenants.set_status(tenant_a.id, TenantStatus.ACTIVE)


# --- passwords ------------------------------------------------------------------------------------


async def test_password_api_rules(services: Services, tenant_a: TenantFixture, client: httpx.AsyncClient) -> None:
    admin = await services.principals.create(
        tenant_a.system, name="adm", kind=PrincipalKind.USER, roles=frozenset({Role.ADMIN})
    )
    admin_key = (await services.keys.create(tenant_a.system, principal_id=admin.id)).key
    bot = await services.principals.create(
        tenant_a.system, name="bot", kind=PrincipalKind.SERVICE_ACCOUNT, roles=frozenset({Role.MEMBER})
    )
    url = "/v1/principals/{}/password"
    ok = await client.put(url.format(admin.id), json={"password": PASSWORD}, headers=tenant_a.headers(admin_key))
    assert ok.status_code == 204
    # An admin cannot take over an owner by setting the owner's password.
    up = await client.put(
        url.format(tenant_a.owner_id), json={"password": PASSWORD}, headers=tenant_a.headers(admin_key)
    )
    assert (up.status_code, up.json()["code"]) == (403, "role_required")
    short = await client.put(url.format(admin.id), json={"password": "short"}, headers=tenant_a.headers())
    assert short.status_code == 422
    robot = await client.put(url.format(bot.id), json={"password": PASSWORD}, headers=tenant_a.headers())
    assert robot.status_code == 422
    events = await actions(services, tenant_a, action="principal.password_set")
    assert [e.payload["principal_id"] for e in events] == [str(admin.id)]
    assert PASSWORD not in str([e.payload for e in events])


async def test_password_set_elsewhere_does_not_reach_other_tenants(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture, client: httpx.AsyncClient
) -> None:
    response = await client.put(
        f"/v1/principals/{tenant_a.owner_id}/password", json={"password": PASSWORD}, headers=tenant_b.headers()
    )
    assert response.status_code == 404


# --- CSRF and roles -----------------------------------------------------------------------------


async def test_posts_without_the_sessions_csrf_token_change_nothing(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    a, b = await owner_user(services, tenant_a), await owner_user(services, tenant_b)
    extra = await services.keys.create(tenant_a.system, principal_id=tenant_a.owner_id, name="keep")
    async with browser() as web_a, browser() as web_b:
        await sign_in(web_a, a)
        await sign_in(web_b, b)
        other_session_token = await page_csrf(web_b)
        for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": other_session_token}):
            refused = await web_a.post(f"/console/keys/{extra.info.id}/revoke", data=data)
            assert refused.status_code == 403, data
            assert "CSRF" in refused.text
            pause = await web_a.post("/console/switches", data={**data, "scope": "ai", "reason": "csrf"})
            assert pause.status_code == 403
    assert (await client.get("/v1/whoami", headers=tenant_a.headers(extra.key))).status_code == 200
    assert await services.policies.tenant_switches(tenant_a.system) == []
    assert await actions(services, tenant_a, action="key.revoked") == []


async def test_a_member_is_gated_like_the_api(services: Services, tenant_a: TenantFixture, browser: Browser) -> None:
    member = await user_with(services, tenant_a, "mem", Role.MEMBER)
    async with browser() as web:
        await sign_in(web, member)
        for path in ("/console/audit", "/console/keys", "/console/switches"):
            page = await web.get(path)
            assert page.status_code == 403, path
            assert "role_required" in page.text
        assert (await web.get("/console/approvals")).status_code == 200
        assert (await web.get("/console/runs")).status_code == 200
        csrf = await page_csrf(web)
        pause = await web.post("/console/switches", data={"csrf": csrf, "scope": "ai", "reason": "member"})
        assert pause.status_code == 403
    assert await services.policies.tenant_switches(tenant_a.system) == []


# --- tenant isolation -----------------------------------------------------------------------------


async def test_another_tenants_session_cannot_see_or_act_on_its_objects(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    turn = await waiting_run(services, client, tenant_a)
    run_id, confirmation_id = turn["run_id"], turn["confirmation_id"]
    key_id = (await services.keys.list(tenant_a.system))[0].id
    b = await owner_user(services, tenant_b)
    async with browser() as web:
        await sign_in(web, b)
        csrf = await page_csrf(web)
        assert confirmation_id not in (await web.get("/console/approvals")).text
        assert (await web.get(f"/console/runs/{run_id}")).status_code == 404
        assert (await web.get(f"/console/runs/{run_id}/status")).status_code == 404
        assert run_id not in (await web.get("/console/runs")).text
        assert str(key_id) not in (await web.get("/console/keys")).text
        assert (await web.post(f"/console/approvals/{confirmation_id}/approve", data={"csrf": csrf})).status_code == 404
        assert (await web.post(f"/console/keys/{key_id}/revoke", data={"csrf": csrf})).status_code == 404
        # B's session token under A's tenant id is no session at all.
        token = web.cookies["tg_console"].split(".", 1)[1]
        web.cookies.set("tg_console", f"{tenant_a.id}.{token}", domain="tenantgate.test", path="/console")
        assert (await web.get("/console/approvals")).status_code == 303
    pending = await services.confirmations.get(tenant_a.system, uuid.UUID(confirmation_id))
    assert pending.status.value == "pending"
    assert (await client.get("/v1/whoami", headers=tenant_a.headers())).status_code == 200


# --- the same change, the same audit --------------------------------------------------------------


async def test_a_change_in_the_console_is_audited_as_through_the_api(
    services: Services, tenant_a: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    via_api = await services.keys.create(tenant_a.system, principal_id=tenant_a.owner_id, name="api")
    via_console = await services.keys.create(tenant_a.system, principal_id=tenant_a.owner_id, name="console")
    assert (await client.post(f"/v1/keys/{via_api.info.id}/revoke", headers=tenant_a.headers())).status_code == 200
    async with browser() as web:
        await sign_in(web, user)
        done = await web.post(f"/console/keys/{via_console.info.id}/revoke", data={"csrf": await page_csrf(web)})
        assert done.status_code == 303
        assert (await web.get(done.headers["location"])).status_code == 200
    revoked = await actions(services, tenant_a, action="key.revoked")
    assert [e.payload["key_id"] for e in revoked] == [str(via_api.info.id), str(via_console.info.id)]
    api_event, console_event = revoked
    assert (api_event.principal_id, console_event.principal_id) == (tenant_a.owner_id, tenant_a.owner_id)
    assert api_event.payload.keys() == console_event.payload.keys()
    assert (await client.get("/v1/whoami", headers=tenant_a.headers(via_console.key))).status_code == 401


async def test_approving_in_the_console_is_the_api_approval(
    services: Services, tenant_a: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    turn = await waiting_run(services, client, tenant_a)
    async with browser() as web:
        await sign_in(web, user)
        queue = await web.get("/console/approvals")
        assert turn["confirmation_id"] in queue.text
        assert "whatsapp_send@v1" in queue.text
        assert "+4930123456" in queue.text
        approved = await web.post(f"/console/approvals/{turn['confirmation_id']}/approve",
                                  data={"csrf": csrf_of(queue.text)})  # fmt: skip
        assert approved.status_code == 303
        again = await web.post(
            f"/console/approvals/{turn['confirmation_id']}/approve", data={"csrf": csrf_of(queue.text)}
        )
        assert again.status_code == 409
    decided = await actions(services, tenant_a, action="confirmation.approved")
    assert [(e.tool, e.decision, e.principal_id) for e in decided] == [("whatsapp_send@v1", "allow", tenant_a.owner_id)]


async def test_pause_all_ai_from_the_console(
    services: Services, tenant_a: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    async with browser() as web:
        await sign_in(web, user)
        paused = await web.post(
            "/console/switches", data={"csrf": await page_csrf(web), "scope": "ai", "reason": "incident"}
        )
        assert paused.status_code == 303
        page = await web.get("/console/switches")
        assert "all AI paused" in page.text
    switches = await services.policies.tenant_switches(tenant_a.system)
    assert [(s.scope.value, s.set_by) for s in switches] == [("ai", f"user:{tenant_a.owner_id}")]
    events = await actions(services, tenant_a, action="kill_switch.changed")
    assert [(e.payload["scope"], e.payload["state"], e.payload["reason"]) for e in events] == [("ai", "on", "incident")]


# --- pages render -----------------------------------------------------------------------------------


async def test_every_page_renders_for_an_owner(
    services: Services, tenant_a: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    turn = await waiting_run(services, client, tenant_a)
    async with browser() as web:
        await sign_in(web, user)
        audit = await web.get("/console/audit")
        assert audit.status_code == 200
        assert "chain verified" in audit.text
        assert "run.started" in audit.text
        filtered = await web.get("/console/audit", params={"action": "run.started", "decision": ""})
        assert "run.started" in filtered.text
        assert "console.login" not in filtered.text.split("<table")[1]
        assert (await web.get("/console/audit", params={"since": "not a time"})).status_code == 422
        first = await web.get("/console/audit/1")
        assert first.status_code == 200
        assert "payload (redacted)" in first.text
        assert (await web.get("/console/audit/999999")).status_code == 404
        run = await web.get(f"/console/runs/{turn['run_id']}")
        assert "awaiting_confirmation" in run.text
        assert "decision" in run.text
        status = await web.get(f"/console/runs/{turn['run_id']}/status")
        assert status.json()["status"] == "awaiting_confirmation"
        usage = await web.get("/console/usage")
        assert "tool_calls" in usage.text or "Budgets" in usage.text
        keys = await web.get("/console/keys")
        created = await web.post("/console/keys", data={"csrf": csrf_of(keys.text), "name": "fresh", "roles": "member"})
        assert created.status_code == 201
        assert "shown this once" in created.text
        assert (await web.get("/console/static/console.js")).status_code == 200
        assert (await web.get("/console/static/nope.js")).status_code == 404


async def test_the_platform_view_lists_and_pauses_tenants(
    services: Services, tenant_a: TenantFixture, browser: Browser
) -> None:
    _, platform_key = await services.platform_keys.create("console-test")
    user = await owner_user(services, tenant_a)
    async with browser() as ops, browser() as web:
        await sign_in(web, user)
        form = await ops.get("/console/platform/login")
        bad = await ops.post("/console/platform/login", data={"csrf": csrf_of(form.text), "key": "tgp_nope_nope"})
        assert bad.status_code == 401
        signed = await ops.post("/console/platform/login", data={"csrf": csrf_of(form.text), "key": platform_key})
        assert signed.status_code == 303
        page = await ops.get("/console/platform")
        assert tenant_a.tenant.name in page.text
        # A tenant session is not a platform session, and the reverse.
        assert (await web.get("/console/platform")).status_code == 303
        ops.cookies.delete("tg_console")
        assert (await ops.get("/console/approvals")).status_code == 303
        paused = await ops.post(f"/console/platform/tenants/{tenant_a.id}/suspend", data={"csrf": csrf_of(page.text)})
        assert paused.status_code == 303
        try:
            assert (await services.tenants.get(tenant_a.id)).status.value == "suspended"
            assert (await web.get("/console/approvals")).status_code == 303
        finally:
            page = await ops.get("/console/platform")
            await ops.post(f"/console/platform/tenants/{tenant_a.id}/resume", data={"csrf": csrf_of(page.text)})
    assert (await services.tenants.get(tenant_a.id)).status.value == "active"
    report = await services.audit.verify(PLATFORM_CHAIN)
    assert report.ok


# --- row security of the console's tables ---------------------------------------------------------


async def test_the_login_lookup_admits_one_tenant_row_and_no_session_or_password(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture, test_db: DatabaseFixture, browser: Browser
) -> None:
    for tenant in (tenant_a, tenant_b):
        user = await owner_user(services, tenant)
        async with browser() as web:
            assert (await sign_in(web, user)).status_code == 303
    with psycopg.connect(test_db.urls.app) as conn:
        conn.execute("SELECT set_config('tenantgate.auth_tenant_name', %s, true)", [tenant_b.tenant.name])
        tenants = conn.execute("SELECT id FROM tenantgate.tenants").fetchall()
        sessions = conn.execute("SELECT count(*) FROM tenantgate.console_sessions").fetchone()
        passwords = conn.execute("SELECT count(*) FROM tenantgate.console_passwords").fetchone()
        # SELECT-only: the lookup never lets a tenant row be changed.
        changed = conn.execute("UPDATE tenantgate.console_sessions SET revoked_at = now()").rowcount
        conn.rollback()
        conn.execute("SELECT set_config('tenantgate.tenant_id', %s, true)", [str(tenant_a.id)])
        own = conn.execute("SELECT DISTINCT tenant_id FROM tenantgate.console_sessions").fetchall()
    assert tenants == [(tenant_b.id,)]
    assert sessions == (0,)
    assert passwords == (0,)
    assert changed == 0
    assert own == [(tenant_a.id,)]


async def test_an_idle_or_expired_session_ends(services: Services, tenant_a: TenantFixture, browser: Browser) -> None:
    user = await owner_user(services, tenant_a)
    idle = services.console.timeouts.idle
    for column, age in (("last_seen_at", idle), ("expires_at", idle * 0)):
        async with browser() as web:
            await sign_in(web, user)
            assert (await web.get("/console/usage")).status_code == 200
            async with services.db.admin() as conn:
                await conn.exec_driver_sql(
                    f"UPDATE tenantgate.console_sessions SET {column} = now() - %(age)s "
                    "WHERE tenant_id = %(t)s AND revoked_at IS NULL",
                    {"age": age + timedelta(seconds=1), "t": tenant_a.id},
                )
            assert (await web.get("/console/usage")).status_code == 303, column
            # A form posted with an ended session is refused, not redirected.
            assert (await web.post("/console/logout", data={"csrf": "x"})).status_code == 401


async def test_a_revoked_platform_key_ends_its_console_session(services: Services, browser: Browser) -> None:
    info, platform_key = await services.platform_keys.create("console-revoke")
    async with browser() as ops:
        form = await ops.get("/console/platform/login")
        await ops.post("/console/platform/login", data={"csrf": csrf_of(form.text), "key": platform_key})
        assert (await ops.get("/console/platform")).status_code == 200
        await services.platform_keys.revoke(info.id)
        assert (await ops.get("/console/platform")).status_code == 303


async def test_a_member_sees_only_their_own_runs(
    services: Services, tenant_a: TenantFixture, browser: Browser, client: httpx.AsyncClient
) -> None:
    turn = await waiting_run(services, client, tenant_a)  # the owner's run
    member = await user_with(services, tenant_a, "runner", Role.MEMBER)
    async with browser() as web:
        await sign_in(web, member)
        assert turn["run_id"] not in (await web.get("/console/runs")).text
        assert (await web.get(f"/console/runs/{turn['run_id']}")).status_code == 404
        # Nor can a member approve the owner's agent's request.
        csrf = await page_csrf(web)
        refused = await web.post(f"/console/approvals/{turn['confirmation_id']}/approve", data={"csrf": csrf})
        assert refused.status_code == 404
