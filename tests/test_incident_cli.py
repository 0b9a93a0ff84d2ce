"""`tenantgate incident` as an operator runs it during an incident, against the suite's database.

Each command runs with its own services and event loop (typer's runner on a worker thread),
so the suite's ``services`` are "another process": the effect must reach them within a second.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from tenantgate.cli import app
from tenantgate.config import Settings
from tenantgate.errors import Unauthenticated
from tenantgate.gate import Code, ProposedCall
from tenantgate.installation import Services
from tenantgate.logs import configure_logging
from tests.conftest import MASTER_KEY, PEPPER, TenantFixture

ECHO = ProposedCall("echo@v1", {"text": "x"})
POLICY = {"packages": [{"package": "basics"}], "grants": [{"id": "echo", "tools": ["echo@v1"]}]}


@pytest.fixture(scope="module")
def env(settings: Settings) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    assert settings.database_url
    assert settings.admin_database_url
    assert settings.owner_database_url
    return {
        **clean,
        "TENANTGATE_DATABASE_URL": settings.database_url.get_secret_value(),
        "TENANTGATE_ADMIN_DATABASE_URL": settings.admin_database_url.get_secret_value(),
        "TENANTGATE_OWNER_DATABASE_URL": settings.owner_database_url.get_secret_value(),
        "TENANTGATE_DB_ROLE_PREFIX": settings.db_role_prefix,
        "TENANTGATE_PEPPER": PEPPER,
        "TENANTGATE_MASTER_KEY": MASTER_KEY,
        "TENANTGATE_PLUGINS": "tests.fixture_tools:PLUGIN",
    }


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def tg(env: dict[str, str], *args: str, ok: bool = True) -> Ran:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    configure_logging("warning")  # the command pointed logging at the runner's stream, now closed
    ran = Ran(result.exit_code, result.stdout, result.stderr)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        ran = Ran(2, ran.stdout, ran.stderr + f"{type(result.exception).__name__}: {result.exception}")
    if ok:
        assert ran.returncode == 0, (ran.stderr, result.exception)
    return ran


async def within(check: Callable[[], Awaitable[bool]], seconds: float = 1.0) -> None:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, "not effective within a second"
        await asyncio.sleep(0.01)


@pytest.fixture
async def platform_clean(services: Services) -> AsyncIterator[None]:
    before = {s.id for s in await services.policies.platform_switches()}
    yield
    for switch in await services.policies.platform_switches():
        if switch.id not in before:
            await services.policies.clear_platform_switch(switch.id)


async def test_revoke_keys_from_the_cli_stops_them_in_the_server_process(
    env: dict[str, str], services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    ran = await tg(env, "incident", "revoke-keys", "--tenant", str(tenant_a.id), "--reason", "leaked")
    assert "Revoked 1 keys of the tenant." in ran.stdout

    async def refused() -> bool:
        try:
            await services.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")
        except Unauthenticated:
            return True
        return False

    await within(refused)
    await services.authenticator.authenticate(f"Bearer {tenant_b.owner_key}", request_id="t")  # B still works
    (event,) = await services.audit.page(tenant_a.system, action="key.revoked_all")
    assert event.payload is not None
    assert event.payload["by"].startswith("cli")


async def test_pause_and_resume_ai_from_the_cli(
    env: dict[str, str], services: Services, platform_clean: None, tenant_a: TenantFixture
) -> None:
    await services.policies.set_policy(tenant_a.system, POLICY)
    human = await services.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")
    agent = human.for_ai_execution(uuid.uuid4())

    async def agent_gets(code: Code) -> bool:
        return (await services.boundary.gate.decide(agent, ECHO)).code is code

    tenant = str(tenant_a.id)
    ran = await tg(env, "incident", "pause-ai", "--tenant", tenant, "--reason", "injection")
    assert "ai switch" in ran.stdout
    await tg(env, "incident", "pause-ai", "--tenant", tenant, "--reason", "injection")  # twice is fine
    await within(lambda: agent_gets(Code.KILL_SWITCH))
    status = await tg(env, "incident", "status", "--tenant", tenant)
    assert "injection" in status.stdout
    assert "resumed" in (await tg(env, "incident", "resume-ai", "--tenant", tenant)).stdout
    assert "was not paused" in (await tg(env, "incident", "resume-ai", "--tenant", tenant)).stdout
    await within(lambda: agent_gets(Code.ALLOWED))

    await tg(env, "incident", "pause-ai", "--platform", "--reason", "vendor breach")
    await within(lambda: agent_gets(Code.KILL_SWITCH))
    assert (await services.boundary.gate.decide(human, ECHO)).code is Code.ALLOWED
    await tg(env, "incident", "resume-ai", "--platform")
    await within(lambda: agent_gets(Code.ALLOWED))


async def test_cli_bad_input_is_a_clear_error_and_changes_nothing(
    env: dict[str, str], services: Services, platform_clean: None, tenant_a: TenantFixture
) -> None:
    before = await services.policies.platform_switches()
    principal = ("--principal", str(uuid.uuid4()))
    cases = [
        (("incident", "pause-ai", "--reason", "x"), "one of them"),
        (("incident", "pause-ai", "--platform", "--tenant", str(tenant_a.id), "--reason", "x"), "one of them"),
        (("incident", "revoke-keys", "--tenant", str(uuid.uuid4()), "--reason", "x"), "No such tenant"),
        (("incident", "revoke-keys", "--tenant", str(tenant_a.id), *principal, "--reason", "x"), "No such principal"),
        (("incident", "revoke-keys", "--tenant", str(tenant_a.id), "--disable-principal", "--reason", "x"), "needs"),
        (("incident", "disable-integration", "whatsap", "--reason", "typo"), "known:"),
        (("incident", "rotate-data-key", "--tenant", str(uuid.uuid4()), "--reason", "x"), "No such tenant"),
    ]
    for args, message in cases:
        ran = await tg(env, *args, ok=False)
        assert ran.returncode != 0, args
        assert message in ran.stderr + ran.stdout, (args, ran)
    assert await services.policies.platform_switches() == before
    await services.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="t")  # still valid
    assert await services.audit.page(tenant_a.system, action="key.revoked_all") == []
