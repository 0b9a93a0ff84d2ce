"""With the directive queue configured, an approved run resumes on a ``tenantgate worker`` process.

The API side only enqueues the resumption (a ``tenantgate.resume_run`` job); the worker claims the
run, executes the held call (as a directive, on the same queue) and drives the run to its reply.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from tenantgate.agent import RunStatus
from tenantgate.installation import Installation, Services
from tests import fixture_tools
from tests.conftest import new_tenant

ROOT = Path(__file__).resolve().parent.parent
CONTACT = "+4930123456"
SEND = {"to": CONTACT, "message": "hello"}
POLICY = {
    "packages": [{"package": "whatsapp"}],
    "grants": [{"id": "contacts", "tools": ["whatsapp_send@v1"]}],
    "ai": {"planner": {"provider": "scripted", "script": [
        {"calls": [{"tool": "whatsapp_send@v1", "arguments": SEND}]}, {"reply": "Sent from the worker."},
    ]}},
}  # fmt: skip


def worker_env(installation: Installation, data_dir: Path) -> dict[str, str]:
    settings = installation.settings
    assert settings.pepper is not None
    assert settings.master_key is not None
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")},
        "PYTHONPATH": str(ROOT),
        "TENANTGATE_DATA_DIR": str(data_dir),
        "TENANTGATE_DATABASE_URL": installation.app_url,
        "TENANTGATE_ADMIN_DATABASE_URL": installation.admin_url,
        "TENANTGATE_DB_ROLE_PREFIX": settings.db_role_prefix,
        "TENANTGATE_PEPPER": settings.pepper.get_secret_value(),
        "TENANTGATE_MASTER_KEY": settings.master_key.get_secret_value(),
        "TENANTGATE_DIRECTIVES": "queue",
        "TENANTGATE_LOG_LEVEL": "warning",
    }


async def test_an_approved_run_resumes_on_the_worker(
    installation: Installation, services: Services, tmp_path: Path
) -> None:
    settings = installation.settings.model_copy(update={"directives": "queue"})
    queued = Services.build(replace(installation, settings=settings), registry=fixture_tools.registry(settings.mode))
    await queued.start()
    tenant = await new_tenant(services, "queue")
    await queued.policies.set_policy(tenant.system, POLICY)
    owner = await services.authenticator.authenticate(f"Bearer {tenant.owner_key}", request_id="test")

    def start_worker() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "tests.directive_worker", "9"]
        with (tmp_path / "worker.log").open("wb") as log:  # the child keeps its own descriptor
            return subprocess.Popen(command, env=worker_env(installation, tmp_path), cwd=ROOT, stdout=log, stderr=log)

    worker = start_worker()
    try:
        session = await queued.runtime.sessions.create(owner, title="queued")
        held = await queued.runtime.run_turn(owner, session.id, "Say hello on WhatsApp.")
        assert held.status is RunStatus.AWAITING_CONFIRMATION
        assert held.confirmation_id is not None
        await queued.confirmations.approve(owner, held.confirmation_id)
        for _ in range(600):
            run = await queued.runtime.runs.get(owner, held.run_id)
            if run.status not in (RunStatus.AWAITING_CONFIRMATION, RunStatus.RUNNING):
                break
            await asyncio.sleep(0.1)
    finally:
        worker.terminate()
        await asyncio.to_thread(worker.wait, 15)
        await queued.stop()
    logs = (tmp_path / "worker.log").read_text(errors="replace")
    assert run.status is RunStatus.COMPLETED, logs[-3000:]
    kinds = [e.kind for e in run.events]
    assert kinds.count("resumed") == 1
    assert kinds[-3:] == ["planner", "reply", "finished"]
    result = next(e for e in run.events if e.kind == "tool_result")
    assert (result.data["tool"], result.data["outcome"]) == ("whatsapp_send@v1", "succeeded")
    async with services.db.tenant(tenant.system) as conn:
        directives = (
            await conn.execute(
                sa.text("SELECT tool, status FROM tenantgate.directives WHERE tenant_id = :t"), {"t": tenant.id}
            )
        ).all()
    assert [tuple(d) for d in directives] == [("whatsapp_send@v1", "succeeded")]  # one effect
    assert [e for e in fixture_tools.EXECUTED if e[0] != str(tenant.id)] == fixture_tools.EXECUTED  # not here
