"""`tenantgate limits show|set|plan` against the suite's database, as an operator runs them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tenantgate.installation import Services
from tenantgate.logs import configure_logging
from tests.conftest import TenantFixture
from tests.test_vault_cli import env, tg

__all__ = ["env"]  # the vault CLI tests' environment: the suite's database


@pytest.fixture(autouse=True)
def _logs_back_to_stderr() -> Iterator[None]:
    # The CLI points logging at the runner's captured stderr, which is closed afterwards.
    yield
    configure_logging("warning")


async def test_limits_set_and_show_from_the_cli(
    env: dict[str, str], services: Services, tenant_a: TenantFixture
) -> None:
    shown = await tg(env, "limits", "show", "--tenant", str(tenant_a.id))
    assert "(mode defaults)" in shown.stdout
    assert "tool_calls_per_day" in shown.stdout
    plan = f"cli-{uuid.uuid4().hex[:6]}"
    await tg(env, "limits", "plan", plan, "--set", "cron_jobs=44")
    await tg(env, "limits", "set", "--tenant", str(tenant_a.id), "--plan", plan, "--set", "tool_calls_per_day=77")
    resolved = await services.quotas.plans.tenant_limits_admin(tenant_a.id)
    assert (resolved.plan, resolved.limits.cron_jobs, resolved.limits.tool_calls_per_day) == (plan, 44, 77)
    assert "override" in (await tg(env, "limits", "show", "--tenant", str(tenant_a.id))).stdout


async def test_bad_limits_from_the_cli_change_nothing(
    env: dict[str, str], services: Services, tenant_a: TenantFixture
) -> None:
    bad = await tg(env, "limits", "set", "--tenant", str(tenant_a.id), "--set", "tool_calls_per_day=lots", ok=False)
    assert bad.returncode != 0
    assert "NAME=VALUE" in bad.stderr
    unknown = await tg(env, "limits", "set", "--tenant", str(tenant_a.id), "--set", "free_lunches=1", ok=False)
    assert "Unknown limits" in unknown.stderr
    missing = await tg(env, "limits", "show", "--tenant", str(uuid.uuid4()), ok=False)
    assert missing.returncode != 0
    assert (await services.quotas.plans.tenant_limits_admin(tenant_a.id)).overrides == {}
