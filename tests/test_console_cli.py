"""`tenantgate principals set-password`: an operator gives a user a console password from the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from tenantgate.installation import Services
from tenantgate.logs import configure_logging
from tests.conftest import TenantFixture
from tests.console_helpers import PASSWORD, ConsoleUser, sign_in
from tests.test_vault_cli import env, tg

__all__ = ["env"]  # the vault CLI tests' environment: the suite's database


@pytest.fixture(autouse=True)
def _logs_back_to_stderr() -> Iterator[None]:
    yield
    configure_logging("warning")


async def test_set_a_console_password_from_the_cli_then_sign_in(
    env: dict[str, str], services: Services, tenant_a: TenantFixture, app: FastAPI
) -> None:
    args = ["principals", "set-password", "--tenant", str(tenant_a.id), "--principal", str(tenant_a.owner_id)]
    short = await tg(env, *args, stdin="short\nshort\n", ok=False)
    assert short.returncode != 0
    done = await tg(env, *args, stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert "Console password set." in done.stdout
    assert PASSWORD not in done.stdout
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tenantgate.test") as web:
        assert (await sign_in(web, ConsoleUser(tenant_a, tenant_a.owner_id, "owner"))).status_code == 303
    events = await services.audit.page(tenant_a.system, action="principal.password_set")
    assert len(events) == 1
