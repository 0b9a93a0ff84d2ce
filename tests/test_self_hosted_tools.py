"""The self-hosted tools end to end: absent in saas, working through the boundary in self_hosted.

The self_hosted installation here shares the suite's database; its registry is the one
``build_registry`` makes, so these are the real built-in tools, not fixture stand-ins.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tenantgate.api import create_app
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.gate import Code, ProposedCall, Verdict
from tenantgate.installation import Installation, Services, build_registry
from tenantgate.tools import Executor, Outcome
from tenantgate.tools.builtin import Sandbox
from tests.conftest import TenantFixture, new_tenant

LOCAL = ("read_file@v1", "write_file@v1", "edit_file@v1", "list_dir@v1", "shell@v1")
POLICY: dict[str, Any] = {
    "packages": [{"package": "workspace"}, {"package": "shell"}],
    "grants": [{"id": "files", "tools": list(LOCAL[:4])}, {"id": "shell", "tools": ["shell@v1"]}],
}
_PROBE = Sandbox.for_this_process().probe()
needs_bwrap = pytest.mark.skipif(_PROBE is not None, reason=f"bubblewrap cannot run a sandbox here: {_PROBE}")


@pytest.fixture(scope="module")
def workspace_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("self-hosted") / "workspaces"


@pytest.fixture(scope="module")
async def hosted(installation: Installation, workspace_root: Path) -> AsyncIterator[Services]:
    settings = installation.settings.model_copy(
        update={"mode": DeploymentMode.SELF_HOSTED, "workspace_root": workspace_root}
    )
    services = Services.build(dataclasses.replace(installation, settings=settings))
    await services.db.verify()
    await services.start()
    yield services
    await services.stop()


@pytest.fixture(scope="module")
async def hosted_app(hosted: Services) -> AsyncIterator[FastAPI]:
    app = create_app(hosted, dispose_on_shutdown=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def hosted_client(hosted_app: FastAPI, hosted: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=hosted_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test") as client:
        yield client
    await hosted.audit.drain()


async def _tenant(hosted: Services) -> tuple[TenantFixture, TenantContext]:
    tenant = await new_tenant(hosted, "local")
    await hosted.policies.set_policy(tenant.system, POLICY)
    owner = await hosted.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="t")
    return tenant, owner.for_ai_execution(uuid.uuid4())


async def _call(hosted: Services, ctx: TenantContext, tool: str, **arguments: Any) -> Any:
    outcome = await hosted.boundary.call(ctx, ProposedCall(tool, arguments))
    assert outcome.decision.verdict is Verdict.ALLOW, outcome.decision.reason
    assert outcome.result is not None
    return outcome.result


def test_saas_registry_leaves_the_local_tools_out(installation: Installation, tmp_path: Path) -> None:
    saas = build_registry(installation.settings.model_copy(update={"workspace_root": tmp_path / "ws"}))
    for name in LOCAL:
        assert name not in saas
        excluded = saas.excluded(name)
        assert excluded is not None
        assert excluded.local_capabilities
    assert saas.package_tools("workspace") == ()
    assert saas.package_tools("shell") == ()
    assert not (tmp_path / "ws").exists()  # nothing was probed or created for tools that do not exist


async def test_saas_refuses_a_policy_naming_them_and_the_gate_says_capability_denied(
    installation: Installation,
) -> None:
    saas = Services.build(installation)
    await saas.start()
    try:
        tenant = await new_tenant(saas, "saas")
        with pytest.raises(InvalidInput, match="cannot exist in saas mode"):
            await saas.policies.set_policy(tenant.system, POLICY)
        for name in LOCAL:
            outcome = await saas.boundary.call(tenant.system, ProposedCall(name, {"path": "x", "command": "id"}))
            assert outcome.decision.code is Code.CAPABILITY_DENIED
            assert outcome.result is None
    finally:
        await saas.stop()


async def test_file_tools_work_through_the_boundary(hosted: Services, workspace_root: Path) -> None:
    tenant, agent = await _tenant(hosted)
    wrote = await _call(hosted, agent, "write_file@v1", path="notes/todo.md", content="buy milk\ncall bob\n")
    assert wrote.outcome is Outcome.SUCCEEDED
    assert wrote.output == {"path": "notes/todo.md", "bytes": 18, "created": True}
    edited = await _call(hosted, agent, "edit_file@v1", path="notes/todo.md", old_text="bob", new_text="alice")
    assert edited.output == {"path": "notes/todo.md", "bytes": 20}
    read = await _call(hosted, agent, "read_file@v1", path="notes/todo.md")
    assert read.output["content"] == "buy milk\ncall alice\n"
    assert read.for_model()["untrusted"] is True
    listed = await _call(hosted, agent, "list_dir@v1", path="notes")
    assert listed.output["entries"] == [{"name": "todo.md", "kind": "file", "size": 20}]
    assert (workspace_root / str(tenant.id) / "notes" / "todo.md").read_text() == "buy milk\ncall alice\n"
    executed = await hosted.audit.page(tenant.system, action="tool.executed")
    assert [(e.tool, e.decision) for e in executed] == [
        ("write_file@v1", "succeeded"),
        ("edit_file@v1", "succeeded"),
        ("read_file@v1", "succeeded"),
        ("list_dir@v1", "succeeded"),
    ]


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "a/../../x"])
async def test_escapes_through_the_boundary_fail_and_are_audited(hosted: Services, path: str) -> None:
    tenant, agent = await _tenant(hosted)
    result = await _call(hosted, agent, "read_file@v1", path=path)
    assert result.outcome is Outcome.FAILED
    assert result.error.startswith("WorkspaceEscape")
    assert result.output is None
    executed = await hosted.audit.page(tenant.system, action="tool.executed")
    assert [(e.tool, e.decision) for e in executed] == [("read_file@v1", "failed")]


async def test_one_tenant_cannot_reach_anothers_files(hosted: Services, workspace_root: Path) -> None:
    _, agent_a = await _tenant(hosted)
    tenant_b, agent_b = await _tenant(hosted)
    await _call(hosted, agent_b, "write_file@v1", path="secret.txt", content="B-SECRET")
    read = await _call(hosted, agent_a, "read_file@v1", path="secret.txt")
    assert read.outcome is Outcome.FAILED
    assert "NotFound" in read.error
    listed = await _call(hosted, agent_a, "list_dir@v1", path=".")
    assert listed.output["entries"] == []
    # Arguments cannot name the tenant: the only workspace reachable is the caller's.
    sneaky = await _call(hosted, agent_a, "read_file@v1", path=f"../{tenant_b.id}/secret.txt")
    assert sneaky.outcome is Outcome.FAILED
    assert "WorkspaceEscape" in sneaky.error
    assert (workspace_root / str(tenant_b.id) / "secret.txt").read_text() == "B-SECRET"


async def test_over_http_a_tenant_reads_only_its_own_workspace(
    hosted_client: httpx.AsyncClient, hosted: Services
) -> None:
    tenant_a, _ = await _tenant(hosted)
    tenant_b, _ = await _tenant(hosted)
    url = "/v1/tools/{}/call"
    wrote = await hosted_client.post(
        url.format("write_file@v1"), json={"arguments": {"path": "b.txt", "content": "B"}}, headers=tenant_b.headers()
    )
    assert wrote.status_code == 200
    own = await hosted_client.post(
        url.format("read_file@v1"), json={"arguments": {"path": "b.txt"}}, headers=tenant_b.headers()
    )
    assert own.json()["output"]["content"] == "B"
    other = await hosted_client.post(
        url.format("read_file@v1"), json={"arguments": {"path": "b.txt"}}, headers=tenant_a.headers()
    )
    assert other.status_code == 502
    assert other.json()["code"] == "tool_failed"
    assert "B" not in other.json()["message"].replace("NotFound", "")
    escape = await hosted_client.post(
        url.format("read_file@v1"), json={"arguments": {"path": f"../{tenant_b.id}/b.txt"}}, headers=tenant_a.headers()
    )
    assert escape.status_code == 502
    assert "WorkspaceEscape" in escape.json()["message"]


@needs_bwrap
async def test_shell_runs_sandboxed_in_the_callers_workspace(hosted: Services, workspace_root: Path) -> None:
    _, agent_a = await _tenant(hosted)
    tenant_b, agent_b = await _tenant(hosted)
    await _call(hosted, agent_b, "write_file@v1", path="secret.txt", content="B-SECRET")
    await _call(hosted, agent_a, "write_file@v1", path="mine.txt", content="A-DATA")
    other = workspace_root / str(tenant_b.id) / "secret.txt"
    ran = await _call(hosted, agent_a, "shell@v1", command=f"cat mine.txt; echo; id -u; cat {other}", timeout=20)
    assert ran.outcome is Outcome.SUCCEEDED
    out = ran.output
    assert out["stdout"].splitlines()[0] == "A-DATA"
    assert out["stdout"].splitlines()[1] != "0"
    assert "B-SECRET" not in out["stdout"]
    assert "No such file or directory" in out["stderr"]
    assert out["exit_code"] != 0


async def test_shell_refuses_every_call_when_bubblewrap_is_missing(
    installation: Installation, tmp_path: Path, hosted: Services
) -> None:
    settings = installation.settings.model_copy(
        update={"mode": DeploymentMode.SELF_HOSTED, "workspace_root": tmp_path, "shell_bwrap": "/nonexistent/bwrap"}
    )
    registry = build_registry(settings)  # start-up succeeds
    assert "shell@v1" in registry
    _, agent = await _tenant(hosted)
    result = await Executor(registry=registry).run(agent, "shell@v1", {"command": "id"}, call_id=uuid.uuid4())
    assert result.outcome is Outcome.FAILED
    assert "SandboxUnavailable" in result.error
    assert "apt-get install bubblewrap" in result.error


def test_opting_out_of_the_sandbox_is_refused_in_saas(installation: Installation) -> None:
    from tenantgate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="self_hosted opt-out"):
        installation.settings.model_copy(update={"shell_sandbox": "none"}).check()
    hosted = installation.settings.model_copy(update={"shell_sandbox": "none", "mode": DeploymentMode.SELF_HOSTED})
    hosted.check()
