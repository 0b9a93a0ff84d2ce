"""Seed 000's threat table, in saas mode, as tests: prompts can only reach what was granted."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tenantgate.context import DeploymentMode
from tenantgate.errors import CapabilityDenied
from tenantgate.gate import Code, ProposedCall
from tenantgate.installation import Services
from tenantgate.tools import LOCAL_CAPABILITIES, ToolRegistry
from tests import fixture_tools
from tests.conftest import TenantFixture

GRANT_EVERYTHING = {
    "packages": [{"package": name} for name in ("basics", "whatsapp", "web", "memory")],
    "grants": [{"id": "everything", "tools": ["*"]}],
}

# What a hijacked planner proposes for "delete everything", "run rm -rf /", "use python to wipe files".
DESTRUCTIVE_ATTEMPTS = [
    ("shell@v1", {"command": "rm -rf /"}),
    ("shell@v1", {"command": "find / -delete"}),
    ("python_exec@v1", {"command": "import shutil; shutil.rmtree('/')"}),
    ("write_file@v1", {"path": "/etc/passwd"}),
    ("delete_everything", {}),
    ("bash", {"cmd": "rm -rf /"}),
    ("perl@v1", {"script": "unlink glob '*'"}),
]


def test_the_saas_registry_has_no_local_tools_and_refuses_them() -> None:
    saas = fixture_tools.registry(DeploymentMode.SAAS)
    assert all(not (t.spec.capabilities & LOCAL_CAPABILITIES) for t in saas)
    assert {"shell@v1", "write_file@v1", "python_exec@v1"}.isdisjoint(t.name for t in saas)
    for local in fixture_tools.LOCAL_TOOLS:
        with pytest.raises(CapabilityDenied, match="saas mode never grants"):
            ToolRegistry(DeploymentMode.SAAS).register(local)
    hosted = fixture_tools.registry(DeploymentMode.SELF_HOSTED)
    assert {"shell@v1", "write_file@v1", "python_exec@v1"} <= {t.name for t in hosted}


@pytest.mark.parametrize(("tool", "arguments"), DESTRUCTIVE_ATTEMPTS)
async def test_destructive_prompts_meet_a_capability_denial(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tool: str, arguments: dict[str, str]
) -> None:
    # Even a tenant that grants everything it can cannot grant what does not exist.
    await services.policies.set_policy(tenant_a.system, GRANT_EVERYTHING)
    before = len(fixture_tools.EXECUTED)
    response = await client.post(f"/v1/tools/{tool}/call", json={"arguments": arguments}, headers=tenant_a.headers())
    assert response.status_code == 403
    assert response.json()["code"] in {"capability_denied", "unknown_tool"}
    assert len(fixture_tools.EXECUTED) == before
    # And it is not an agent-only rule: the owner's own agent meets the same wall.
    owner = await services.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")
    outcome = await services.boundary.call(owner.for_ai_execution(uuid.uuid4()), ProposedCall(tool, arguments))
    assert outcome.decision.code in {Code.CAPABILITY_DENIED, Code.UNKNOWN_TOOL}
    assert outcome.result is None


async def test_policy_cannot_grant_a_local_tool_in_saas(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    response = await client.put(
        "/v1/policy",
        json={"packages": [{"package": "local"}], "grants": [{"id": "root", "tools": ["shell@v1"]}]},
        headers=tenant_a.headers(),
    )
    assert response.status_code == 422
    assert "cannot exist in saas mode" in response.json()["message"]


async def test_reading_another_tenants_data_is_impossible(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_a.system, GRANT_EVERYTHING)
    # The only identity a tool ever sees is the caller's, whatever the arguments claim.
    claimed = await client.post(
        "/v1/tools/whoami_tool@v1/call", json={"arguments": {"tenant_id": str(tenant_b.id)}}, headers=tenant_a.headers()
    )
    assert claimed.json()["code"] == "invalid_arguments"
    honest = await client.post("/v1/tools/whoami_tool@v1/call", json={"arguments": {}}, headers=tenant_a.headers())
    assert honest.json()["output"]["tenant_id"] == str(tenant_a.id)
    # Tenant B's data (its principals, keys, policy, audit trail) is out of A's reach over the API.
    for path in ("/v1/principals", "/v1/keys", "/v1/audit", "/v1/policy", "/v1/confirmations"):
        response = await client.get(path, headers=tenant_a.headers())
        assert response.status_code == 200, path
        assert str(tenant_b.owner_id) not in response.text
        assert str(tenant_b.id) not in response.text


async def test_spamming_and_burning_stay_inside_the_tenant(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    # "Spam WhatsApp": every send needs a human, and only to the tenant's own contacts; tenant B is untouched.
    await services.policies.set_policy(tenant_a.system, GRANT_EVERYTHING)
    for n in range(5):
        response = await client.post(
            "/v1/tools/whatsapp_send@v1/call",
            json={"arguments": {"to": "+4930123456", "message": f"spam {n}"}},
            headers=tenant_a.headers(),
        )
        assert response.status_code == 202
    assert not [e for e in fixture_tools.EXECUTED if e[1] == "whatsapp_send@v1" and e[0] == str(tenant_a.id)]
    assert (await client.get("/v1/confirmations", headers=tenant_b.headers())).json() == []
