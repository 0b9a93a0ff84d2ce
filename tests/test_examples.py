"""Every example configuration the repo ships is valid, and the checkers catch what is not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.errors import ConfigurationError, InvalidInput
from tenantgate.gate import PolicyDocument
from tenantgate.installation import Services, build_registry
from tenantgate.tools import ToolRegistry
from tests.conftest import MASTER_KEY, PEPPER, DatabaseFixture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENV_FILES = sorted((EXAMPLES / "env").glob("*.env"))
POLICIES = sorted((EXAMPLES / "policies").glob("*.json"))


def test_the_examples_are_there() -> None:
    assert len(ENV_FILES) >= 3
    assert len(POLICIES) >= 2


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_every_example_env_file_is_accepted_without_warnings(path: Path) -> None:
    settings = Settings.from_env_file(path)
    settings.check()
    assert settings.transport_warnings() == []  # an example shows the safe way


def test_the_env_file_alone_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTGATE_MODE", "self_hosted")
    path = tmp_path / "a.env"
    path.write_text("TENANTGATE_MODE=saas\nAWS_REGION=eu-central-1\n")
    assert Settings.from_env_file(path).mode is DeploymentMode.SAAS


def test_a_misspelt_setting_is_named_with_the_likely_one(tmp_path: Path) -> None:
    path = tmp_path / "typo.env"
    path.write_text("TENANTGATE_MODE=saas\nTENANTGATE_REDIS_ULR=rediss://cache:6380/0\n")
    with pytest.raises(ConfigurationError, match="TENANTGATE_REDIS_ULR \\(did you mean TENANTGATE_REDIS_URL\\?\\)"):
        Settings.from_env_file(path)


def test_bad_values_and_unsafe_combinations_are_refused(tmp_path: Path) -> None:
    bad_value = tmp_path / "bad.env"
    bad_value.write_text("TENANTGATE_MODE=cloud\n")
    with pytest.raises(ValidationError, match="mode"):
        Settings.from_env_file(bad_value)
    unsafe = tmp_path / "unsafe.env"
    unsafe.write_text("TENANTGATE_MODE=saas\nTENANTGATE_EGRESS_ALLOW_PRIVATE=10.0.0.0/8\n")
    with pytest.raises(ConfigurationError, match="saas mode never lets tools reach internal networks"):
        Settings.from_env_file(unsafe).check()
    with pytest.raises(ConfigurationError, match="no such file"):
        Settings.from_env_file(tmp_path / "missing.env")


def test_config_check_command(tmp_path: Path) -> None:
    typo = tmp_path / "typo.env"
    typo.write_text("TENANTGATE_MODEE=saas\n")
    result = subprocess.run(
        [sys.executable, "-m", "tenantgate", "config", "check", *map(str, ENV_FILES), str(typo)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    for path in ENV_FILES:
        assert f"ok {path}" in result.stdout.replace("\n", "")
    assert f"refused {typo}: not a tenantgate setting: TENANTGATE_MODEE (did you mean TENANTGATE_MODE?)" in (
        result.stderr.replace("\n", "")
    )


def _registry(services: Services, mode: DeploymentMode) -> ToolRegistry:
    """The built-in tools of ``mode``, as an installation in that mode registers them."""
    settings = Settings(_env_file=None, mode=mode)  # type: ignore[call-arg]
    return build_registry(
        settings, memory=services.memory, cron=services.cron, heartbeat=services.heartbeat, skills=services.skills
    )


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_example_policy_is_valid_in_its_mode(services: Services, path: Path) -> None:
    mode = DeploymentMode.SELF_HOSTED if path.name.startswith("self-hosted") else DeploymentMode.SAAS
    PolicyDocument.model_validate(json.loads(path.read_text())).check(_registry(services, mode))


def test_a_self_hosted_policy_is_refused_in_saas(services: Services) -> None:
    document = PolicyDocument.model_validate(json.loads((EXAMPLES / "policies" / "self-hosted-ops.json").read_text()))
    with pytest.raises(InvalidInput, match="tool 'shell@v1' cannot exist in saas mode"):
        document.check(_registry(services, DeploymentMode.SAAS))


def test_policy_check_command_against_an_installation(test_db: DatabaseFixture, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"packages": [{"package": "web"}], "grants": [{"id": "x", "tools": ["rm_rf@v1"]}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    env.update(
        TENANTGATE_MODE="saas",
        TENANTGATE_DATABASE_URL=test_db.urls.app,
        TENANTGATE_ADMIN_DATABASE_URL=test_db.urls.admin,
        TENANTGATE_DB_ROLE_PREFIX=test_db.roles.owner.removesuffix("_owner"),
        TENANTGATE_PEPPER=PEPPER,
        TENANTGATE_MASTER_KEY=MASTER_KEY,
    )
    saas_policy = EXAMPLES / "policies" / "saas-support-agent.json"
    result = subprocess.run(
        [sys.executable, "-m", "tenantgate", "policy", "check", str(saas_policy), str(broken)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"ok {saas_policy}" in result.stdout.replace("\n", "")
    assert "rm_rf@v1" in result.stderr
