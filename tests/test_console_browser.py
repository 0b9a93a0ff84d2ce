"""The admin console in a real browser: Playwright driving Debian's Chromium, headless.

The app is served by uvicorn on 127.0.0.1 (on the suite's loop and services); API calls that
check the console's effect go to the same server over HTTP. A screenshot of each page is saved
under ``test-artifacts/console/``. Without a Chromium binary these tests fail with a message
saying so, unless ``TENANTGATE_SKIP_BROWSER_TESTS=1`` is set (then they are skipped).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tenantgate.context import Role
from tenantgate.installation import Services
from tests.conftest import TenantFixture
from tests.console_helpers import CONTACT, ConsoleUser, owner_user, user_with, waiting_run

CHROMIUM = Path(os.environ.get("TENANTGATE_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "console"
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
async def server(app: FastAPI) -> AsyncIterator[str]:
    """The suite's app behind a real uvicorn server on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve(sockets=[sock]))
    for _ in range(200):
        if served.started:
            break
        await asyncio.sleep(0.05)
    assert served.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    served.should_exit = True
    await task
    sock.close()


@pytest.fixture(scope="module")
def chromium_binary() -> Path:
    if not CHROMIUM.exists():
        reason = f"No Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) to run these."
        if os.environ.get("TENANTGATE_SKIP_BROWSER_TESTS") == "1":
            pytest.skip(f"TENANTGATE_SKIP_BROWSER_TESTS=1; {reason}")
        pytest.fail(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
async def chromium(chromium_binary: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium_binary), args=ARGS, headless=True)
        yield browser
        await browser.close()


@pytest.fixture
async def context(chromium: Browser, server: str) -> AsyncIterator[BrowserContext]:
    ctx = await chromium.new_context(base_url=server)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    await ctx.close()


@pytest.fixture
async def api(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def sign_in(context: BrowserContext, user: ConsoleUser, *, screenshot: bool = False) -> Page:
    page = await context.new_page()
    await page.goto("/console/audit")  # signed out: sent to the sign-in form
    await expect(page).to_have_url(f"{page.url.split('/console')[0]}/console/login")
    await page.fill("#tenant", user.tenant.tenant.name)
    await page.fill("#user", user.name)
    await page.fill("#password", user.password)
    if screenshot:
        await shot(page, "login")
    await page.click("button[type=submit]")
    await expect(page.locator("#whoami")).to_contain_text(str(user.principal_id))
    return page


async def grant_echo(services: Services, tenant: TenantFixture) -> None:
    await services.policies.set_policy(
        tenant.system,
        {"packages": [{"package": "basics"}, {"package": "whatsapp"}], "grants": [{"id": "b", "tools": ["echo@v1"]}]},
    )


async def echo(api: httpx.AsyncClient, tenant: TenantFixture, key: str | None = None) -> httpx.Response:
    return await api.post("/v1/tools/echo@v1/call", json={"arguments": {"text": "hi"}}, headers=tenant.headers(key))


# --- the tests ------------------------------------------------------------------------------------


async def test_sign_in_and_read_the_audit_trail(
    services: Services, tenant_a: TenantFixture, context: BrowserContext, api: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    await waiting_run(services, api, tenant_a)
    page = await sign_in(context, user, screenshot=True)
    await shot(page, "approvals-empty-or-waiting")
    await page.click("a[href='/console/audit']")
    await expect(page.locator("#chain")).to_contain_text("chain verified")
    await expect(page.locator("#events td.action", has_text="console.login")).to_have_count(1)
    await expect(page.locator("#events td.action", has_text="run.started")).to_have_count(1)
    await shot(page, "audit")
    await page.fill("input[name=action]", "run.started")
    await page.click("form.filters button")
    await expect(page.locator("#events td.action")).to_have_text(["run.started"])
    await page.locator("#events a").first.click()
    await expect(page.locator("#payload")).to_contain_text("run_id")
    await shot(page, "audit-event")
    await page.goto("/console/usage")
    await expect(page.locator("#budgets")).to_be_visible()
    await shot(page, "usage")
    await page.goto("/console/runs")
    await expect(page.locator("#runs td.status")).to_have_text(["awaiting_confirmation"])
    await shot(page, "runs")
    await page.locator("#runs a").first.click()
    await expect(page.locator("#timeline td.kind", has_text="decision")).to_have_count(1)
    await shot(page, "run")


async def test_approve_in_the_console_and_watch_the_waiting_run_complete(
    services: Services, tenant_a: TenantFixture, context: BrowserContext, api: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    turn = await waiting_run(services, api, tenant_a)
    page = await sign_in(context, user)
    row = page.locator(f"#confirmation-{turn['confirmation_id']}")
    await expect(row.locator("td.tool")).to_have_text("whatsapp_send@v1")
    await expect(row).to_contain_text(CONTACT)
    await expect(row.locator("[data-expires]")).to_contain_text("m ")  # the countdown runs
    await shot(page, "approvals")
    await row.locator("button.approve").click()
    await expect(page.locator("#notice")).to_contain_text("Approved")
    await page.goto(f"/console/runs/{turn['run_id']}")
    # The page polls the run's status and reloads when it changes.
    await expect(page.locator("#run-status")).to_have_text("completed", timeout=15_000)


async def test_a_kill_switch_flipped_in_the_console_denies_the_next_api_call(
    services: Services, tenant_a: TenantFixture, context: BrowserContext, api: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    await grant_echo(services, tenant_a)
    assert (await echo(api, tenant_a)).status_code == 200
    page = await sign_in(context, user)
    await page.goto("/console/switches")
    await page.select_option("#tool-switch select[name=target]", "echo@v1")
    await page.fill("#tool-switch input[name=reason]", "browser test")
    await page.click("#tool-switch button")
    await expect(page.locator("#notice")).to_contain_text("Kill switch on")
    await expect(page.locator("#switches td.target")).to_have_text(["echo@v1"])
    await shot(page, "switches")
    denied = await echo(api, tenant_a)
    assert (denied.status_code, denied.json()["code"]) == (403, "kill_switch")
    await page.click("#switches button")
    await expect(page.locator("#notice")).to_contain_text("cleared")
    assert (await echo(api, tenant_a)).status_code == 200


async def test_create_a_key_then_revoke_it(
    services: Services, tenant_a: TenantFixture, context: BrowserContext, api: httpx.AsyncClient
) -> None:
    user = await owner_user(services, tenant_a)
    page = await sign_in(context, user)
    await page.goto("/console/keys")
    await page.fill("#create-key input[name=name]", "from the browser")
    await page.check("#create-key input[value=member]")
    await page.click("#create-key button")
    key = (await page.locator("#new-key").text_content() or "").strip()
    assert key.startswith("tg_")
    await shot(page, "keys-created")
    whoami = await api.get("/v1/whoami", headers=tenant_a.headers(key))
    assert (whoami.status_code, whoami.json()["roles"]) == (200, ["member"])
    prefix = key.split("_")[1]
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    row = page.locator("#keys tr", has=page.locator("td.prefix", has_text=prefix))
    await row.locator("button.revoke").click()
    await expect(page.locator("#notice")).to_contain_text("revoked")
    await expect(page.locator("#new-key")).to_have_count(0)  # shown once, never again
    assert (await api.get("/v1/whoami", headers=tenant_a.headers(key))).status_code == 401


async def test_csrf_and_cross_tenant_attempts_are_refused(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture, chromium: Browser, server: str,
    api: httpx.AsyncClient,
) -> None:  # fmt: skip
    turn = await waiting_run(services, api, tenant_a)
    key_id = (await services.keys.list(tenant_a.system))[0].id
    a_ctx = await chromium.new_context(base_url=server)
    b_ctx = await chromium.new_context(base_url=server)
    try:
        a_page = await sign_in(a_ctx, await owner_user(services, tenant_a))
        b_page = await sign_in(b_ctx, await owner_user(services, tenant_b))
        approve = f"/console/approvals/{turn['confirmation_id']}/approve"
        # A's own session, without its CSRF token or with a wrong one (or B's): refused, nothing changes.
        b_token = await b_page.locator("input[name=csrf]").first.input_value()
        for form in ({}, {"csrf": "0" * 64}, {"csrf": b_token}):
            refused = await a_page.request.post(approve, form=form)
            assert refused.status == 403, form
        # B, with a valid session and token, reaches none of A's objects.
        b_token = await b_page.locator("input[name=csrf]").first.input_value()
        assert (await b_page.request.post(approve, form={"csrf": b_token})).status == 404
        assert (await b_page.request.post(f"/console/keys/{key_id}/revoke", form={"csrf": b_token})).status == 404
        run_page = await b_page.goto(f"/console/runs/{turn['run_id']}")
        assert run_page is not None
        assert run_page.status == 404
        await expect(b_page.locator("#error")).to_contain_text("not_found")
        await shot(b_page, "cross-tenant-refused")
        await b_page.goto("/console/approvals")
        await expect(b_page.locator(f"#confirmation-{turn['confirmation_id']}")).to_have_count(0)
    finally:
        await a_ctx.close()
        await b_ctx.close()
    assert (await services.confirmations.get(tenant_a.system, uuid.UUID(turn["confirmation_id"]))).status == "pending"
    assert (await api.get("/v1/whoami", headers=tenant_a.headers())).status_code == 200


async def test_a_member_sees_only_what_the_api_lets_them(
    services: Services, tenant_a: TenantFixture, context: BrowserContext
) -> None:
    member = await user_with(services, tenant_a, "member-user", Role.MEMBER)
    page = await sign_in(context, member)
    response = await page.goto("/console/audit")
    assert response is not None
    assert response.status == 403
    await expect(page.locator("#error")).to_contain_text("role_required")
    await shot(page, "member-refused")


async def test_the_platform_view_pauses_a_tenant(
    services: Services, tenant_a: TenantFixture, context: BrowserContext, api: httpx.AsyncClient
) -> None:
    _, platform_key = await services.platform_keys.create("browser")
    page = await context.new_page()
    await page.goto("/console/platform")
    await page.fill("#key", platform_key)
    await page.click("button[type=submit]")
    row = page.locator(f"#tenant-{tenant_a.id}")
    await expect(row.locator("td.status")).to_have_text("active")
    await shot(page, "platform")
    await row.locator("button.suspend").click()
    await expect(page.locator(f"#tenant-{tenant_a.id} td.status")).to_have_text("suspended")
    try:
        assert (await api.get("/v1/whoami", headers=tenant_a.headers())).status_code == 401
    finally:
        await page.locator(f"#tenant-{tenant_a.id} button.resume").click()
        await expect(page.locator(f"#tenant-{tenant_a.id} td.status")).to_have_text("active")
    assert (await api.get("/v1/whoami", headers=tenant_a.headers())).status_code == 200
