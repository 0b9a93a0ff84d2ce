"""The SaaS-safe API tools against fake providers on loopback that speak the real wire formats.

Each tool runs through the real executor with the real egress door (tenant lists from the
policy cache, refusals audited in PostgreSQL); credentials come from the real vault (sealed in
PostgreSQL), and their uses and refreshes are read back from the tenant's audit trail. Each
provider: the happy path, its error bodies (401, 429, others), a timeout, a malformed answer,
and an egress refusal.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tenantgate.api import create_app
from tenantgate.audit import AuditRecord
from tenantgate.context import DeploymentMode
from tenantgate.installation import Installation, Services
from tenantgate.tools import Outcome, ToolResult
from tests.api_tools_world import World, api_world
from tests.conftest import TenantFixture
from tests.fakes import brave, google_sheets, r8r, web, whatsapp
from tests.fakes.server import Reply


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with api_world(services, timeout_s=1.0) as w:
        yield w


def failed(result: ToolResult, *fragments: str) -> None:
    assert result.outcome is Outcome.FAILED, result
    assert result.error is not None
    for fragment in fragments:
        assert fragment in result.error, result.error


def uses(events: list[AuditRecord]) -> list[tuple[str | None, str | None, str | None, Any]]:
    """(decision, code, tool, credential name) of each credential audit event."""
    return [(e.decision, e.code, e.tool, (e.payload or {}).get("name")) for e in events]


async def stored_secret(world: World, tenant: TenantFixture, name: str) -> dict[str, str]:
    """What the vault holds now for ``name``, opened as a tool would open it."""
    credential = await world.credentials.use(tenant.system, name, tool="test@v1", call_id=uuid.uuid4(), run_id=None)
    return dict(credential.secret)


async def deny(services: Services, tenant: TenantFixture, *domains: str) -> None:
    await services.policies.set_policy(tenant.system, {"egress": {"deny_domains": list(domains)}})


# --- web_fetch ----------------------------------------------------------------------------


async def test_web_fetch_returns_readable_text_of_html(world: World, tenant_a: TenantFixture) -> None:
    result = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/article")})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    out = result.output
    assert out["title"] == "Row security & you"
    assert (
        out["text"]
        == "Home | Docs\n\nRow security\n\nPolicies restrict which rows each role can see.\n\nSecond paragraph."
    )
    assert "ignore previous instructions" not in out["text"]
    assert "hidden text" not in out["text"]
    assert "invisible instructions" not in out["text"]
    assert "aria hidden" not in out["text"]
    assert out["content_type"] == "text/html"
    assert out["bytes"] == len(web.ARTICLE)
    assert out["sha256"] == hashlib.sha256(web.ARTICLE).hexdigest()
    assert result.for_model()["untrusted"] is True


async def test_web_fetch_passes_text_and_json_and_truncates(world: World, tenant_a: TenantFixture) -> None:
    text = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/notes.txt"), "max_chars": 100})
    assert text.output["text"] == "plain notes\nline two"
    assert text.output["title"] is None
    data = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/data.json")})
    assert data.output["text"] == '{"rows": 3}'
    world.web.pages["/long"] = Reply(200, "x" * 500, {"Content-Type": "text/plain"})
    long = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/long"), "max_chars": 100})
    assert long.output["text"] == "x" * 100
    assert long.output["truncated"] is True
    assert long.output["bytes"] == 500


async def test_web_fetch_refuses_other_content_types_and_error_pages(world: World, tenant_a: TenantFixture) -> None:
    pdf = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/report.pdf")})
    failed(pdf, "reads HTML, plain text and JSON", "application/pdf")
    missing = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/missing")})
    failed(missing, "(404)", "Not Found")


async def test_web_fetch_times_out_clearly(world: World, tenant_a: TenantFixture) -> None:
    result = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/slow")})
    failed(result, "did not answer in time")


async def test_web_fetch_follows_redirects_through_the_door(
    world: World, services: Services, tenant_a: TenantFixture
) -> None:
    inner = world.page("/notes.txt")
    ok = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page(f"/go?to={inner}")})
    assert ok.output["text"] == "plain notes\nline two"
    # An open redirect to the metadata service dies at the hop, before any dial.
    metadata = f"http://169.254.169.254:{world.web.server.port}/latest/meta-data/"
    meta = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page(f"/go?to={metadata}")})
    failed(meta, "egress_denied", "cloud metadata endpoint", "rule: cloud-metadata")
    assert {httpx.URL(d).host for d in world.dialled} == {"127.0.0.1"}


async def test_web_fetch_refused_by_the_tenant_denylist(
    world: World, services: Services, tenant_a: TenantFixture
) -> None:
    await deny(services, tenant_a, web.HOST)
    result = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/article")})
    failed(result, "EgressDenied", "tenant's domain denylist", "rule: tenant-domain-denied")
    assert world.web.server.arrivals == []


async def test_web_fetch_rejects_non_http_urls(world: World, tenant_a: TenantFixture) -> None:
    result = await world.run(tenant_a.system, "web_fetch@v1", {"url": "file:///etc/passwd"})
    failed(result, "ValidationError")
    assert world.arrivals() == 0


# --- web_search (Brave) -------------------------------------------------------------------


async def brave_key(world: World, tenant: TenantFixture, key: str = brave.API_KEY) -> None:
    await world.credentials.create(
        tenant.system, name="brave_search", kind="api_key", secret={"api_key": key}, provider="brave"
    )


async def test_web_search_sends_brave_wire_format(world: World, tenant_a: TenantFixture) -> None:
    await brave_key(world, tenant_a)
    result = await world.run(tenant_a.system, "web_search@v1", {"query": "row level security", "count": 2})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert result.output["provider"] == "Brave Search"
    assert [r["url"] for r in result.output["results"]] == [
        "https://www.postgresql.org/docs/current/ddl-rowsecurity.html",
        "https://example.com/rls",
    ]
    (arrival,) = world.brave.server.arrivals
    assert arrival.path == "/res/v1/web/search"
    assert arrival.query == {"q": ["row level security"], "count": ["2"]}
    assert arrival.headers["x-subscription-token"] == brave.API_KEY
    assert arrival.headers["accept"] == "application/json"
    (used,) = await world.trail(tenant_a.system, "credential.used")
    assert uses([used]) == [("succeeded", None, "web_search@v1", "brave_search")]
    assert used.payload is not None
    assert used.payload["call_id"] == str(result.call_id)


async def test_web_search_with_no_web_section_is_empty(world: World, tenant_a: TenantFixture) -> None:
    await brave_key(world, tenant_a)
    world.brave.override = Reply(200, {"type": "search", "query": {"original": "zzqx"}})
    result = await world.run(tenant_a.system, "web_search@v1", {"query": "zzqx"})
    assert result.output["results"] == []


@pytest.mark.parametrize(
    ("reply", "fragments"),
    [
        (brave.invalid_token(), ["rejected the credential (401)", "SUBSCRIPTION_TOKEN_INVALID",
                                 "The provided subscription token is invalid"]),
        (brave.rate_limited(), ["rate-limited the request (429)", "RATE_LIMITED", "Wait before retrying"]),
        (Reply(200, b"<html>captcha</html>", {"Content-Type": "text/html"}), ["not JSON"]),
        (Reply(200, {"web": {"results": "nope"}}), ["unexpected shape"]),
        (Reply(200, raw=b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"web\""), ["Could not reach Brave Search"]),
        (Reply(200, {"web": {"results": []}}, delay_s=3), ["did not answer in time"]),
    ],
)  # fmt: skip
async def test_web_search_failures_are_clear(
    world: World, tenant_a: TenantFixture, reply: Reply, fragments: list[str]
) -> None:
    await brave_key(world, tenant_a)
    world.brave.override = reply
    failed(await world.run(tenant_a.system, "web_search@v1", {"query": "q"}), *fragments)


async def test_web_search_with_a_wrong_key_and_without_a_credential(world: World, tenant_a: TenantFixture) -> None:
    missing = await world.run(tenant_a.system, "web_search@v1", {"query": "q"})
    failed(missing, "NotFound", "no credential named 'brave_search'")
    assert world.brave.server.arrivals == []
    assert uses(await world.trail(tenant_a.system, "credential.used")) == [
        ("failed", "not_found", "web_search@v1", "brave_search")
    ]
    await brave_key(world, tenant_a, "wrong")
    failed(await world.run(tenant_a.system, "web_search@v1", {"query": "q"}), "(401)")


async def test_web_search_credentials_are_per_tenant(
    world: World, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    await brave_key(world, tenant_a)
    failed(await world.run(tenant_b.system, "web_search@v1", {"query": "q"}), "no credential named")
    assert world.brave.server.arrivals == []
    # The refused use is in tenant b's trail; tenant a's credential was never opened.
    assert uses(await world.trail(tenant_b.system, "credential.used")) == [
        ("failed", "not_found", "web_search@v1", "brave_search")
    ]
    assert await world.trail(tenant_a.system, "credential.used") == []


async def test_web_search_refused_by_egress(world: World, services: Services, tenant_a: TenantFixture) -> None:
    await brave_key(world, tenant_a)
    await deny(services, tenant_a, "*.brave.test")
    failed(await world.run(tenant_a.system, "web_search@v1", {"query": "q"}), "rule: tenant-domain-denied")
    assert world.brave.server.arrivals == []


async def test_web_search_count_is_bounded(world: World, tenant_a: TenantFixture) -> None:
    failed(await world.run(tenant_a.system, "web_search@v1", {"query": "q", "count": 11}), "ValidationError")
    failed(await world.run(tenant_a.system, "web_search@v1", {"query": "q", "count": 0}), "ValidationError")


# --- whatsapp_send ------------------------------------------------------------------------


async def wa_credential(world: World, tenant: TenantFixture, token: str = whatsapp.ACCESS_TOKEN) -> None:
    metadata = {"phone_number_id": whatsapp.PHONE_NUMBER_ID}
    await world.credentials.create(
        tenant.system,
        name="whatsapp",
        kind="oauth",
        secret={"access_token": token},
        provider="whatsapp",
        metadata=metadata,
    )


async def test_whatsapp_sends_a_text(world: World, tenant_a: TenantFixture) -> None:
    await wa_credential(world, tenant_a)
    result = await world.run(tenant_a.system, "whatsapp_send@v1", {"to": "+15551234567", "message": "Hello"})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert result.output["message_id"].startswith("wamid.")
    assert result.output["wa_id"] == "15551234567"
    (arrival,) = world.whatsapp.server.arrivals
    assert arrival.method == "POST"
    assert arrival.path == f"/v21.0/{whatsapp.PHONE_NUMBER_ID}/messages"
    assert arrival.headers["authorization"] == f"Bearer {whatsapp.ACCESS_TOKEN}"
    assert arrival.json() == {"messaging_product": "whatsapp", "recipient_type": "individual",
                              "to": "+15551234567", "type": "text", "text": {"body": "Hello"}}  # fmt: skip


async def test_whatsapp_sends_a_template(world: World, tenant_a: TenantFixture) -> None:
    await wa_credential(world, tenant_a)
    args = {"to": "15551234567", "template": "order_update", "template_params": ["Ana", "#42"], "language": "pt_BR"}
    result = await world.run(tenant_a.system, "whatsapp_send@v1", args)
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert world.whatsapp.sent == [{
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": "15551234567", "type": "template",
        "template": {"name": "order_update", "language": {"code": "pt_BR"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}]}]},
    }]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"to": "+15551234567"}, "either message"),
        ({"to": "+15551234567", "message": "x", "template": "t"}, "not both"),
        ({"to": "+15551234567", "message": "x", "template_params": ["a"]}, "need a template"),
        ({"to": "call me", "message": "x"}, "to"),
    ],
)
async def test_whatsapp_arguments_are_checked(
    world: World, tenant_a: TenantFixture, args: dict[str, Any], message: str
) -> None:
    await wa_credential(world, tenant_a)
    failed(await world.run(tenant_a.system, "whatsapp_send@v1", args), "ValidationError", message)
    assert world.whatsapp.server.arrivals == []


@pytest.mark.parametrize(
    ("reply", "fragments"),
    [
        (whatsapp.invalid_token(), ["rejected the credential (401)", "Error validating access token",
                                    "code 190", "subcode 463", "fbtrace_id"]),
        (whatsapp.rate_limited(), ["(429)", "(#130429) Rate limit hit"]),
        (whatsapp.outside_window(), ["refused the request (400)", "(#131047) Re-engagement message"]),
        (Reply(200, {"messaging_product": "whatsapp", "contacts": []}), ["without a message id"]),
        (Reply(502, "<html>Bad Gateway</html>", {"Content-Type": "text/html"}), ["failed (502)", "Try again"]),
        (Reply(200, {"messages": [{"id": "wamid.x"}]}, delay_s=3), ["did not answer in time"]),
    ],
)  # fmt: skip
async def test_whatsapp_failures_are_clear(
    world: World, tenant_a: TenantFixture, reply: Reply, fragments: list[str]
) -> None:
    await wa_credential(world, tenant_a)
    world.whatsapp.override = reply
    result = await world.run(tenant_a.system, "whatsapp_send@v1", {"to": "+15551234567", "message": "Hi"})
    failed(result, *fragments)


async def test_whatsapp_credential_needs_a_phone_number_id(world: World, tenant_a: TenantFixture) -> None:
    await world.credentials.create(
        tenant_a.system, name="whatsapp", kind="oauth", secret={"access_token": whatsapp.ACCESS_TOKEN}
    )
    result = await world.run(tenant_a.system, "whatsapp_send@v1", {"to": "+15551234567", "message": "Hi"})
    failed(result, "no 'phone_number_id'")
    assert world.whatsapp.server.arrivals == []


async def test_whatsapp_refused_by_egress(world: World, services: Services, tenant_a: TenantFixture) -> None:
    await wa_credential(world, tenant_a)
    await deny(services, tenant_a, whatsapp.HOST)
    result = await world.run(tenant_a.system, "whatsapp_send@v1", {"to": "+15551234567", "message": "Hi"})
    failed(result, "rule: tenant-domain-denied")
    assert world.whatsapp.server.arrivals == []


def test_whatsapp_send_is_high_impact(world: World) -> None:
    spec = world.registry.get("whatsapp_send@v1")
    assert spec is not None
    assert spec.spec.high_impact
    assert spec.spec.integration == "whatsapp"
    assert spec.spec.effect.value == "external"


# --- google_sheets ------------------------------------------------------------------------


async def oauth(world: World, tenant: TenantFixture, *, access: str = "ya29.valid-token", expires_in: float = 3600,
                refresh: str = google_sheets.REFRESH_TOKEN) -> None:  # fmt: skip
    secret = {
        "access_token": access,
        "refresh_token": refresh,
        "client_id": google_sheets.CLIENT_ID,
        "client_secret": google_sheets.CLIENT_SECRET,
        "expires_at": str(int(time.time() + expires_in)),
    }
    await world.credentials.create(tenant.system, name="google_sheets", kind="oauth", secret=secret, provider="google")


SHEET = {"spreadsheet_id": google_sheets.SPREADSHEET_ID}


async def test_sheets_read_append_update(world: World, tenant_a: TenantFixture) -> None:
    await oauth(world, tenant_a)
    read = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1:B2"})
    assert read.outcome is Outcome.SUCCEEDED, read.error
    assert read.output["values"] == [["name", "qty"], ["apples", "3"]]
    assert read.output["range"] == "Sheet1!A1:B2"

    append = {**SHEET, "action": "append", "range": "Sheet1!A1", "values": [["pears", 5], ["=IMPORTXML(1)", None]]}
    appended = await world.run(tenant_a.system, "google_sheets@v1", append)
    assert appended.output["updated_range"] == "Sheet1!A3:B4"
    assert appended.output["updated_rows"] == 2

    update = {**SHEET, "action": "update", "range": "Sheet1!B2", "values": [[7]]}
    updated = await world.run(tenant_a.system, "google_sheets@v1", update)
    assert updated.output["updated_cells"] == 1
    assert world.sheets.sheets["Sheet1"][1] == ["apples", "7"]

    post, put = world.sheets.server.arrivals[1:]
    assert post.method == "POST"
    assert post.raw_path == f"/v4/spreadsheets/{google_sheets.SPREADSHEET_ID}/values/Sheet1!A1:append"
    assert post.query == {"valueInputOption": ["RAW"]}  # formulas stay text
    assert post.json()["values"] == [["pears", 5], ["=IMPORTXML(1)", None]]
    assert put.method == "PUT"
    assert put.query == {"valueInputOption": ["RAW"]}
    assert all(a.headers["authorization"] == "Bearer ya29.valid-token" for a in world.sheets.server.arrivals)
    assert await world.trail(tenant_a.system, "credential.refreshed") == []


async def test_sheets_refreshes_an_expired_token_and_stores_it(world: World, tenant_a: TenantFixture) -> None:
    await oauth(world, tenant_a, access="ya29.expired", expires_in=-10)
    result = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    token_call, read = world.sheets.server.arrivals
    assert token_call.path == "/token"
    assert token_call.headers["host"].startswith(google_sheets.TOKEN_HOST)
    assert token_call.form() == {
        "grant_type": "refresh_token",
        "refresh_token": google_sheets.REFRESH_TOKEN,
        "client_id": google_sheets.CLIENT_ID,
        "client_secret": google_sheets.CLIENT_SECRET,
    }
    assert read.headers["authorization"] == "Bearer ya29.refreshed-1"
    (refreshed,) = await world.trail(tenant_a.system, "credential.refreshed")
    assert uses([refreshed]) == [("succeeded", None, "google_sheets@v1", "google_sheets")]
    assert refreshed.payload is not None
    assert refreshed.payload["call_id"] == str(result.call_id)
    secret = await stored_secret(world, tenant_a, "google_sheets")  # sealed in the vault, opened again
    assert secret["access_token"] == "ya29.refreshed-1"
    assert secret["refresh_token"] == google_sheets.REFRESH_TOKEN
    assert float(secret["expires_at"]) > time.time() + 3000
    # The next call uses the stored token: no second refresh.
    await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    assert world.sheets.server.arrivals[-1].headers["authorization"] == "Bearer ya29.refreshed-1"
    assert world.sheets.issued == 1


async def test_sheets_refreshes_once_on_401(world: World, tenant_a: TenantFixture) -> None:
    await oauth(world, tenant_a, access="ya29.revoked")  # not expired by the clock, but Google says 401
    result = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert [a.path.rsplit("/", 1)[-1] for a in world.sheets.server.arrivals] == ["Sheet1!A1", "token", "Sheet1!A1"]
    assert len(await world.trail(tenant_a.system, "credential.refreshed")) == 1
    assert (await stored_secret(world, tenant_a, "google_sheets"))["access_token"] == "ya29.refreshed-1"


async def test_sheets_revoked_refresh_token_says_reconnect(world: World, tenant_a: TenantFixture) -> None:
    await oauth(world, tenant_a, access="ya29.expired", expires_in=-10, refresh="1//revoked")
    result = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    failed(result, "Google OAuth refused the request (400)", "invalid_grant", "Token has been expired or revoked")
    assert await world.trail(tenant_a.system, "credential.refreshed") == []
    assert (await stored_secret(world, tenant_a, "google_sheets"))["access_token"] == "ya29.expired"


async def test_sheets_401_after_refresh_is_a_failure_not_a_loop(world: World, tenant_a: TenantFixture) -> None:
    await oauth(world, tenant_a, access="ya29.revoked")
    world.sheets.reject_all = True  # even the freshly refreshed token is refused
    result = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    failed(result, "rejected the credential (401)", "UNAUTHENTICATED")
    assert len(world.sheets.server.arrivals) == 3


@pytest.mark.parametrize(
    ("reply", "fragments"),
    [
        (google_sheets.quota_exceeded(), ["(429)", "RESOURCE_EXHAUSTED", "Quota exceeded"]),
        (google_sheets.google_error(403, "PERMISSION_DENIED", "The caller does not have permission"),
         ["refused access (403)", "PERMISSION_DENIED"]),
        (Reply(200, {"range": "Sheet1!A1", "values": "oops"}), ["unexpected shape"]),
        (Reply(200, b"not json", {"Content-Type": "text/plain"}), ["not JSON"]),
        (Reply(200, {"values": []}, delay_s=3), ["did not answer in time"]),
    ],
)  # fmt: skip
async def test_sheets_failures_are_clear(
    world: World, tenant_a: TenantFixture, reply: Reply, fragments: list[str]
) -> None:
    await oauth(world, tenant_a)
    world.sheets.override = reply
    result = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    failed(result, *fragments)


async def test_sheets_arguments_are_checked(world: World, tenant_a: TenantFixture) -> None:
    await oauth(world, tenant_a)
    no_values = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "append", "range": "A1"})
    failed(no_values, "append needs values")
    bad_id = await world.run(tenant_a.system, "google_sheets@v1",
                             {"spreadsheet_id": "../../x", "action": "read", "range": "A1"})  # fmt: skip
    failed(bad_id, "spreadsheet_id")
    assert world.sheets.server.arrivals == []


async def test_sheets_token_endpoint_is_behind_the_door_too(
    world: World, services: Services, tenant_a: TenantFixture
) -> None:
    await oauth(world, tenant_a, access="ya29.expired", expires_in=-10)
    await deny(services, tenant_a, google_sheets.TOKEN_HOST)
    result = await world.run(tenant_a.system, "google_sheets@v1", {**SHEET, "action": "read", "range": "Sheet1!A1"})
    failed(result, "rule: tenant-domain-denied")
    assert world.sheets.server.arrivals == []


# --- r8r ----------------------------------------------------------------------------------


async def r8r_token(world: World, tenant: TenantFixture) -> None:
    await world.credentials.create(
        tenant.system, name="r8r", kind="bearer_token", secret={"token": r8r.TOKEN}, provider="r8r"
    )


async def test_r8r_lists_and_shows(world: World, tenant_a: TenantFixture) -> None:
    await r8r_token(world, tenant_a)
    listed = await world.run(tenant_a.system, "r8r@v1", {"action": "list"})
    assert [w["name"] for w in listed.output["workflows"]] == ["enrich-lead", "cleanup", "score", "mailer"]
    shown = await world.run(tenant_a.system, "r8r@v1", {"action": "show", "workflow": "cleanup"})
    assert [n["type"] for n in shown.output["definition"]["nodes"]] == ["http", "shell"]
    assert "run code or touch local paths (shell)" in shown.output["verdict"]
    safe = await world.run(tenant_a.system, "r8r@v1", {"action": "show", "workflow": "enrich-lead"})
    assert safe.output["verdict"] == "runnable"
    assert all(a.headers["authorization"] == f"Bearer {r8r.TOKEN}" for a in world.r8r.server.arrivals)


async def test_r8r_runs_a_safe_workflow_after_judging_it(world: World, tenant_a: TenantFixture) -> None:
    await r8r_token(world, tenant_a)
    result = await world.run(tenant_a.system, "r8r@v1", {"action": "run", "workflow": "enrich-lead",
                                                         "inputs": {"id": 7}})  # fmt: skip
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert result.output["status"] == "completed"
    assert result.output["output"] == {"result": {"id": 7}}
    assert result.output["node_types"] == ["http", "transform"]
    show, execute = world.r8r.server.arrivals
    assert (show.method, show.path) == ("GET", "/api/workflows/enrich-lead")
    assert (execute.method, execute.path) == ("POST", "/api/workflows/enrich-lead/execute")
    assert execute.json() == {"input": {"id": 7}, "wait": True, "idempotency_key": str(result.call_id)}


@pytest.mark.parametrize(
    ("workflow", "fragment"),
    [("cleanup", "(shell)"), ("score", "asks for a sandbox"), ("mailer", "not on the operator's allowlist (email)")],
)
async def test_r8r_refuses_unsafe_workflows_in_saas(
    world: World, tenant_a: TenantFixture, workflow: str, fragment: str
) -> None:
    await r8r_token(world, tenant_a)
    result = await world.run(tenant_a.system, "r8r@v1", {"action": "run", "workflow": workflow})
    failed(result, fragment)
    assert world.r8r.executed == []
    assert [a.method for a in world.r8r.server.arrivals] == ["GET"]


async def test_r8r_runs_any_workflow_in_self_hosted(services: Services, tenant_a: TenantFixture) -> None:
    async with api_world(services, mode=DeploymentMode.SELF_HOSTED) as world:
        await r8r_token(world, tenant_a)
        result = await world.run(tenant_a.system, "r8r@v1", {"action": "run", "workflow": "cleanup"})
        assert result.outcome is Outcome.SUCCEEDED, result.error
        assert [name for name, _ in world.r8r.executed] == ["cleanup"]


@pytest.mark.parametrize(
    ("reply", "fragments"),
    [
        (Reply(401, {"error": "Unauthorized: invalid or missing API token"}), ["(401)", "invalid or missing"]),
        (Reply(429, {"error": "Too many requests"}, {"Retry-After": "30"}), ["(429)", "Retry after 30 s"]),
        (Reply(200, {"id": "x", "name": "w", "definition": "nodes: [unclosed"}), ["not valid YAML"]),
        (Reply(200, {"id": "x", "name": "w"}), ["without a readable list of nodes"]),
        (Reply(200, {"definition": "nodes:\n  - id: a\n"}), ["node that has no type"]),
        (Reply(200, {}, delay_s=3), ["did not answer in time"]),
    ],
)  # fmt: skip
async def test_r8r_failures_are_clear(
    world: World, tenant_a: TenantFixture, reply: Reply, fragments: list[str]
) -> None:
    await r8r_token(world, tenant_a)
    world.r8r.override = reply
    failed(await world.run(tenant_a.system, "r8r@v1", {"action": "run", "workflow": "enrich-lead"}), *fragments)
    assert world.r8r.executed == []


async def test_r8r_unknown_workflow_and_egress(world: World, services: Services, tenant_a: TenantFixture) -> None:
    await r8r_token(world, tenant_a)
    unknown = await world.run(tenant_a.system, "r8r@v1", {"action": "run", "workflow": "nope"})
    failed(unknown, "(404)", "Workflow not found: nope")
    await deny(services, tenant_a, r8r.HOST)
    refused = await world.run(tenant_a.system, "r8r@v1", {"action": "list"})
    failed(refused, "rule: tenant-domain-denied")
    assert len(world.r8r.server.arrivals) == 1


# --- end to end: the HTTP API, the gate, the executor and the door of an installation -------


async def test_web_fetch_through_the_api_of_an_installation_with_the_real_tools(
    installation: Installation, services: Services, tenant_a: TenantFixture
) -> None:
    async with api_world(services) as world:
        own = Services.build(installation, registry=world.registry, http=world.http)
        app = create_app(own)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test") as api,
        ):
            policy = {
                "packages": [{"package": "web"}],
                "grants": [{"id": "web", "tools": ["web_fetch@v1"]}],
                "egress": {"deny_domains": ["*.brave.test"]},
            }
            await own.policies.set_policy(tenant_a.system, policy)
            listed = await api.get("/v1/tools", headers=tenant_a.headers())
            assert {t["name"] for t in listed.json()["tools"]} == {"web_fetch@v1", "web_search@v1"}

            async def fetch(url: str) -> httpx.Response:
                body = {"arguments": {"url": url}}
                return await api.post("/v1/tools/web_fetch@v1/call", json=body, headers=tenant_a.headers())

            ok = await fetch(world.page("/article"))
            assert ok.status_code == 200, ok.text
            assert ok.json()["output"]["title"] == "Row security & you"
            assert ok.json()["untrusted"] is True

            refused = await fetch(f"http://{brave.HOST}:{world.brave.server.port}/res/v1/web/search")
            assert refused.status_code == 502
            assert "rule: tenant-domain-denied" in refused.json()["message"]
            assert world.brave.server.arrivals == []
            trail = await api.get("/v1/audit", params={"action": "egress.denied"}, headers=tenant_a.headers())
            (event,) = trail.json()["events"]
            assert event["tool"] == "web_fetch@v1"
