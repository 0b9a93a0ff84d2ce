"""The egress door as tools use it: the tenant's domain lists, audited refusals, the operator's settings.

Requests go through the real ``EgressHttp`` (platform policy, tenant lists from the policy
cache, refusals recorded in the tenant's audit chain in PostgreSQL). The resolver knows only
the fake hosts and the dialer reaches only 127.0.0.1: no test can reach a real address.
Refusals by a tenant list are shown to happen before any name is resolved.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.egress import DomainLists, EgressHttp, EgressPolicy, redacted_url
from tenantgate.errors import ConfigurationError, EgressDenied
from tenantgate.installation import Services, build_registry, egress_policy
from tests.api_tools_world import World, api_world
from tests.conftest import TenantFixture, new_tenant
from tests.fakes import web
from tests.fakes.server import Reply


async def set_lists(services: Services, tenant: TenantFixture, **egress: list[str]) -> None:
    await services.policies.set_policy(tenant.system, {"egress": egress})


async def denials(client: httpx.AsyncClient, tenant: TenantFixture) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit", params={"action": "egress.denied"}, headers=tenant.headers())
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


async def fetch(world: World, ctx: TenantContext, url: str, call_id: uuid.UUID | None = None) -> httpx.Response:
    async with world.http.client(ctx, tool="web_fetch@v1", call_id=call_id or uuid.uuid4()) as client:
        return await client.get(url)


@pytest.fixture
async def world(services: Services) -> Any:
    async with api_world(services) as w:
        yield w


async def test_allowed_request_reaches_the_fake_over_loopback(world: World, tenant_a: TenantFixture) -> None:
    response = await fetch(world, tenant_a.system, world.page("/notes.txt"))
    assert response.status_code == 200
    assert response.text == "plain notes\nline two"
    assert world.resolver.calls == [web.HOST]
    assert world.dialled == [f"http://127.0.0.1:{world.web.server.port}/notes.txt"]


async def test_tenant_denylist_refuses_before_resolving_and_is_audited(
    world: World, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    await set_lists(services, tenant_a, deny_domains=["*.example.test"])
    call_id = uuid.uuid4()
    url = world.page("/article").replace("http://", "http://user:pw@") + "?token=s3cret&page=2"
    with pytest.raises(EgressDenied) as refused:
        await fetch(world, tenant_a.system, url, call_id)
    assert refused.value.rule == "tenant-domain-denied"
    assert "'*.example.test' on the tenant's domain denylist" in refused.value.message
    assert world.resolver.calls == []
    assert world.dialled == []
    assert world.web.server.arrivals == []

    (event,) = await denials(client, tenant_a)
    assert event["tool"] == "web_fetch@v1"
    assert event["decision"] == "deny"
    assert event["code"] == "egress_denied"
    port = world.web.server.port
    assert event["payload"] == {
        "call_id": str(call_id),
        "url": f"http://{web.HOST}:{port}/article?token=redacted&page=redacted",
        "rule": "tenant-domain-denied",
    }
    assert "s3cret" not in str(event)
    assert "pw" not in str(event["payload"])


async def test_tenant_allowlist_refuses_everything_else(
    world: World, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    await set_lists(services, tenant_a, allow_domains=["api.search.brave.test"])
    with pytest.raises(EgressDenied) as refused:
        await fetch(world, tenant_a.system, world.page("/notes.txt"))
    assert refused.value.rule == "tenant-domain-not-allowed"
    assert world.web.server.arrivals == []
    await set_lists(services, tenant_a, allow_domains=["*.example.test"])
    assert (await fetch(world, tenant_a.system, world.page("/notes.txt"))).status_code == 200  # the next call sees it


async def test_a_redirect_to_a_denied_host_is_refused_at_the_hop(
    world: World, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    await set_lists(services, tenant_a, deny_domains=["graph.facebook.test"])
    target = f"http://graph.facebook.test:{world.whatsapp.server.port}/v21.0/x"
    with pytest.raises(EgressDenied) as refused:
        await fetch(world, tenant_a.system, world.page(f"/go?to={target}"))
    assert refused.value.rule == "tenant-domain-denied"
    assert [a.path for a in world.web.server.arrivals] == ["/go"]
    assert world.whatsapp.server.arrivals == []
    (event,) = await denials(client, tenant_a)
    assert event["payload"]["url"] == target


@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_responses_are_refused_and_audited(
    services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture, declared: bool
) -> None:
    async with api_world(services, max_response_bytes=1024) as world:
        length = "Content-Length: 5000\r\n" if declared else ""  # without it, only reading tells
        head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{length}Connection: close\r\n\r\n"
        world.web.pages["/big"] = Reply(raw=head.encode() + b"x" * 5000)
        with pytest.raises(EgressDenied) as refused:
            await fetch(world, tenant_a.system, world.page("/big"))
    assert refused.value.rule == "response-too-large"
    (event,) = await denials(client, tenant_a)
    assert event["payload"]["rule"] == "response-too-large"


async def test_platform_rules_still_apply_under_a_tenant_allowlist(
    world: World, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    await set_lists(services, tenant_a, allow_domains=["*.example.test", "127.0.0.1"])
    # A tenant list can only narrow: the platform's port rule refuses what the tenant allowed.
    with pytest.raises(EgressDenied) as refused:
        await fetch(world, tenant_a.system, f"http://{web.HOST}:1/x")
    assert refused.value.rule == "port-not-allowed"
    (event,) = await denials(client, tenant_a)
    assert event["payload"]["rule"] == "port-not-allowed"


async def test_one_tenants_lists_and_refusals_stay_in_that_tenant(
    world: World, services: Services, client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    await set_lists(services, tenant_a, deny_domains=[web.HOST])
    with pytest.raises(EgressDenied):
        await fetch(world, tenant_a.system, world.page("/notes.txt"))
    assert (await fetch(world, tenant_b.system, world.page("/notes.txt"))).status_code == 200
    assert len(await denials(client, tenant_a)) == 1
    assert await denials(client, tenant_b) == []
    # SQL level: tenant B's transaction sees none of A's events (RLS), even without a tenant filter.
    async with services.db.tenant(tenant_b.system) as conn:
        rows = (await conn.exec_driver_sql("SELECT tenant_id FROM tenantgate.audit_events "
                                           "WHERE action = 'egress.denied'")).all()  # fmt: skip
    assert rows == []


async def test_unavailable_policy_state_fails_closed(world: World, tenant_a: TenantFixture) -> None:
    async def down(ctx: TenantContext) -> DomainLists:
        raise ConnectionError("policy store unreachable")

    http = EgressHttp(world.http.policy, lists=down, resolver=world.resolver)
    async with http.client(tenant_a.system, tool="web_fetch@v1", call_id=uuid.uuid4()) as client:
        with pytest.raises(ConnectionError):
            await client.get(world.page("/notes.txt"))
    assert world.web.server.arrivals == []
    assert world.resolver.calls == []


async def test_the_installations_source_applies_tenant_lists(services: Services) -> None:
    tenant = await new_tenant(services, "wired")
    await set_lists(services, tenant, deny_domains=["127.0.0.1"])
    # The tenant rule must decide: had the wiring skipped it, the platform's loopback rule would.
    # Either way nothing is resolved or dialled (an IP literal, refused before any connection).
    async with services.http.client(tenant.system, tool="web_fetch@v1", call_id=uuid.uuid4()) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get("http://127.0.0.1:9/x")
    assert refused.value.rule == "tenant-domain-denied"


def test_redacted_url_keeps_no_credentials_or_query_values() -> None:
    url = httpx.URL("https://alice:pw@api.example.com/v1/x?key=abc&q=hello#frag")
    assert redacted_url(url) == "https://api.example.com/v1/x?key=redacted&q=redacted"
    assert redacted_url(httpx.URL("https://api.example.com/")) == "https://api.example.com/"


def test_domain_lists_refuse_bad_patterns() -> None:
    with pytest.raises(ConfigurationError, match="invalid egress domain pattern"):
        DomainLists(deny=frozenset({"*.exa mple.com"}))


# --- settings -----------------------------------------------------------------------------


def test_internal_hosts_are_refused_at_start_in_saas() -> None:
    settings = Settings(_env_file=None, mode=DeploymentMode.SAAS, egress_allow_private="10.1.0.0/16")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="saas mode never lets tools reach internal networks"):
        settings.check()


def test_internal_hosts_are_allowed_explicitly_in_self_hosted() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        mode=DeploymentMode.SELF_HOSTED,
        egress_allow_private="10.1.0.0/16, 192.168.1.20",
    )
    settings.check()
    policy = egress_policy(settings)
    assert {str(n) for n in policy.allowed_private} == {"10.1.0.0/16", "192.168.1.20/32"}
    assert egress_policy(Settings(_env_file=None)).allowed_private == frozenset()  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["10.0.0.0/33", "nas.local", "10.0.0.1/8"])
def test_bad_internal_hosts_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="egress_allow_private"):
        Settings(_env_file=None, mode=DeploymentMode.SELF_HOSTED, egress_allow_private=value)  # type: ignore[call-arg]


def test_code_nodes_on_the_r8r_allowlist_refuse_start_in_saas() -> None:
    settings = Settings(_env_file=None, r8r_allowed_nodes="http,shell")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"run code or touch local paths \(shell\)"):
        settings.check()
    Settings(_env_file=None, mode=DeploymentMode.SELF_HOSTED, r8r_allowed_nodes="http,shell").check()  # type: ignore[call-arg]


@pytest.mark.parametrize("mode", list(DeploymentMode))
def test_api_tools_and_packages_exist_in_both_modes(mode: DeploymentMode) -> None:
    registry = build_registry(Settings(_env_file=None, mode=mode))  # type: ignore[call-arg]
    assert registry.package_tools("web") == ("web_fetch@v1", "web_search@v1")
    assert registry.package_tools("whatsapp") == ("whatsapp_send@v1", "whatsapp_reply@v1")
    assert registry.package_tools("google_sheets") == ("google_sheets@v1",)
    assert registry.package_tools("r8r") == ("r8r@v1",)
    api = [registry.get(name) for package in ("web", "whatsapp", "google_sheets", "r8r")
           for name in registry.package_tools(package)]  # fmt: skip
    assert all(tool is not None and not tool.spec.local_capabilities for tool in api)
    assert EgressPolicy().allowed_ports == frozenset({80, 443})
