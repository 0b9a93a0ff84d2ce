"""`tenantgate credentials` and `tenantgate vault` as an operator runs them, against the suite's database.

The commands run in this process (typer's runner, on a worker thread with its own event
loop) to keep the suite fast; ``tests/test_cli.py`` covers the real ``tenantgate`` process.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import uuid
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from tenantgate.cli import app
from tenantgate.config import Settings
from tenantgate.installation import Services
from tests.conftest import MASTER_KEY, PEPPER, TenantFixture


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
    }


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def tg(env: dict[str, str], *args: str, stdin: str = "", ok: bool = True) -> Ran:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), input=stdin, env=env)
    ran = Ran(result.exit_code, result.stdout, result.stderr)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        ran = Ran(2, ran.stdout, ran.stderr + f"{type(result.exception).__name__}: {result.exception}")
    if ok:
        assert ran.returncode == 0, (ran.stderr, result.exception)
    return ran


async def test_credentials_and_rotation_from_the_cli(
    env: dict[str, str], services: Services, tenant_a: TenantFixture
) -> None:
    secret = "sk-cli-" + secrets.token_urlsafe(24)
    tenant = str(tenant_a.id)
    created = await tg(env, "credentials", "create", "--tenant", tenant, "--name", "openai", "--kind", "api_key",
                 "--stdin", "--metadata", '{"org": "acme"}', stdin=json.dumps({"api_key": secret}))  # fmt: skip
    credential_id = uuid.UUID(created.stdout.strip())
    listed = await tg(env, "credentials", "list", "--tenant", tenant)
    assert "openai" in listed.stdout
    assert str(credential_id) in listed.stdout
    dek = await tg(env, "vault", "rotate-dek", "--tenant", tenant)
    assert "Re-sealed 1 credentials" in dek.stdout
    kek = await tg(env, "vault", "rotate-kek", "--tenant", tenant)
    assert "Re-wrapped 2 data keys of 1 tenants" not in kek.stdout  # the retired key was destroyed, not re-wrapped
    assert "Re-wrapped 1 data keys of 1 tenants" in kek.stdout
    opened = await services.credentials.use(tenant_a.system, "openai", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert dict(opened.secret) == {"api_key": secret}
    # A secret on the command line is not an option that exists; stdin that is not a JSON object is refused.
    refused = await tg(env, "credentials", "create", "--tenant", tenant, "--name", "x", "--kind", "api_key", "--stdin",
                 stdin="sk-not-json", ok=False)  # fmt: skip
    assert refused.returncode != 0
    assert "JSON object" in refused.stderr
    await tg(env, "credentials", "delete", "--tenant", tenant, str(credential_id))
    assert await services.credentials.list(tenant_a.system) == []
    for result in (created, listed, dek, kek, refused):
        assert secret not in result.stdout + result.stderr
        assert "sk-not-json" not in result.stdout + result.stderr
