"""The README's first command, as a user runs it: `tenantgate serve` on a fresh data directory."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.conftest import DatabaseFixture


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root, the embedded server runs as another user that
    # must traverse every parent, and pytest re-tightens its own base directory to 0700.
    root = Path(tempfile.mkdtemp(prefix="tenantgate-cli-"))
    yield root / "tenantgate-data"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def env(data_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    return {**clean, "TENANTGATE_DATA_DIR": str(data_dir), "TENANTGATE_PLUGINS": "tests.fixture_tools:PLUGIN"}


def tg(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tenantgate", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def server(env: dict[str, str], data_dir: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantgate", "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"tenantgate serve did not come up:\n{out}\n{err}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "tenantgate tenants create" in err  # the printed next step
    # Stopping serve stops the embedded PostgreSQL it started: nothing is left running.
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_serve_then_cli_key_then_whoami(server: str, env: dict[str, str]) -> None:
    tenant_id = tg(env, "tenants", "create", "acme").stdout.strip()
    key = tg(env, "keys", "create", "--tenant", tenant_id, "--role", "owner").stdout.strip()
    assert key.startswith("tg_")
    whoami = httpx.get(f"{server}/v1/whoami", headers={"Authorization": f"Bearer {key}"})
    assert whoami.status_code == 200
    assert whoami.json()["tenant_id"] == tenant_id
    assert whoami.json()["roles"] == ["owner"]
    assert "acme" in tg(env, "tenants", "list").stdout

    listed = tg(env, "keys", "list", "--tenant", tenant_id).stdout
    key_id = next(line.split()[1] for line in listed.splitlines() if key.split("_")[1] in line)
    tg(env, "keys", "revoke", "--tenant", tenant_id, key_id)
    assert httpx.get(f"{server}/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_cli_rotate_keeps_the_old_key_for_the_overlap(server: str, env: dict[str, str]) -> None:
    tenant_id = tg(env, "tenants", "create", "rotating").stdout.strip()
    old = tg(env, "keys", "create", "--tenant", tenant_id, "--role", "admin").stdout.strip()
    listed = tg(env, "keys", "list", "--tenant", tenant_id).stdout
    key_id = next(line.split()[1] for line in listed.splitlines() if old.split("_")[1] in line)
    new = tg(env, "keys", "rotate", "--tenant", tenant_id, key_id, "--overlap", "1h").stdout.strip()
    for key in (old, new):
        assert httpx.get(f"{server}/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    # A key has at most one successor; ending the overlap early is a revocation.
    again = tg(env, "keys", "rotate", "--tenant", tenant_id, key_id, "--overlap", "0s", ok=False)
    assert again.returncode == 2
    assert "conflict" in again.stderr
    tg(env, "keys", "revoke", "--tenant", tenant_id, key_id)
    assert httpx.get(f"{server}/v1/whoami", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert httpx.get(f"{server}/v1/whoami", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_first_start_wrote_private_files_and_locked_the_database(
    server: str, env: dict[str, str], data_dir: Path
) -> None:
    for name in ("pepper", "db-credentials.json", "platform-admin.key"):
        mode = stat.S_IMODE((data_dir / name).stat().st_mode)
        assert mode == 0o600, name
    platform_key = (data_dir / "platform-admin.key").read_text().strip()
    tenants = httpx.get(f"{server}/v1/platform/tenants", headers={"Authorization": f"Bearer {platform_key}"})
    assert tenants.status_code == 200

    app_url = tg(env, "db", "url", "--role", "app").stdout.strip()
    with psycopg.connect(app_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("tenantgate_app",)
    # The package's trust authentication is gone: no password, no login, even as the superuser.
    without_password = app_url.replace(app_url.split("//")[1].split("@")[0], "postgres")
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password.replace("/tenantgate?", "/postgres?"))


def test_bad_cli_input_is_a_clear_error(server: str, env: dict[str, str]) -> None:
    unknown = tg(env, "keys", "create", "--tenant", "00000000-0000-0000-0000-000000000001", ok=False)
    assert unknown.returncode == 2
    assert "not_found" in unknown.stderr
    not_uuid = tg(env, "keys", "create", "--tenant", "acme", ok=False)
    assert not_uuid.returncode != 0
    assert "tenant" in not_uuid.stderr.lower()
    bad_expiry = tg(
        env, "keys", "create", "--tenant", "00000000-0000-0000-0000-000000000001", "--expires", "soon", ok=False
    )
    assert "invalid_input" in bad_expiry.stderr
    bad_name = tg(env, "tenants", "create", "Not Valid", ok=False)
    assert "invalid_input" in bad_name.stderr


def test_db_init_on_a_server_then_cli_with_the_printed_environment(test_db: DatabaseFixture) -> None:
    prefix = f"tgi_{uuid.uuid4().hex[:8]}"
    base = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    init = tg(base, "db", "init", "--superuser-url", test_db.superuser, "--database", prefix, "--role-prefix", prefix)
    printed = dict(line.split("=", 1) for line in init.stdout.splitlines() if line.startswith("TENANTGATE_"))
    assert set(printed) == {
        "TENANTGATE_DATABASE_URL", "TENANTGATE_ADMIN_DATABASE_URL", "TENANTGATE_OWNER_DATABASE_URL",
        "TENANTGATE_DB_ROLE_PREFIX",
    }  # fmt: skip
    try:
        env = {**base, **printed}
        missing_pepper = tg(env, "tenants", "list", ok=False)
        assert missing_pepper.returncode == 2
        assert "TENANTGATE_PEPPER" in missing_pepper.stderr
        env["TENANTGATE_PEPPER"] = "x" * 40
        missing_master_key = tg(env, "tenants", "list", ok=False)
        assert missing_master_key.returncode == 2
        assert "TENANTGATE_MASTER_KEY is required" in missing_master_key.stderr
        env["TENANTGATE_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
        tenant_id = tg(env, "tenants", "create", "external").stdout.strip()
        key = tg(env, "keys", "create", "--tenant", tenant_id, "--role", "admin").stdout.strip()
        assert key.startswith("tg_")
        with psycopg.connect(printed["TENANTGATE_DATABASE_URL"]) as conn:
            assert conn.execute("SELECT count(*) FROM tenantgate.api_keys").fetchone() == (0,)  # no tenant set
        # The owner's URL where the app role's belongs is refused at start, with the reason.
        wrong = {**env, "TENANTGATE_DATABASE_URL": printed["TENANTGATE_OWNER_DATABASE_URL"]}
        refused = tg(wrong, "tenants", "list", ok=False)
        assert refused.returncode == 2
        assert "bypass row-level security" in refused.stderr
    finally:
        with psycopg.connect(test_db.superuser, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(prefix)))
            for role in ("owner", "app", "admin"):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"{prefix}_{role}")))


def test_policy_and_kill_switches_from_the_cli_reach_the_server(
    server: str, env: dict[str, str], tmp_path: Path
) -> None:
    tenant_id = tg(env, "tenants", "create", "gated").stdout.strip()
    key = tg(env, "keys", "create", "--tenant", tenant_id, "--role", "owner").stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    echo = f"{server}/v1/tools/echo@v1/call"
    assert httpx.post(echo, json={"arguments": {"text": "x"}}, headers=headers).json()["code"] == "not_granted"

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({
        "packages": [{"package": "plugin-basics"}],
        "grants": [{"id": "bots-echo", "tools": ["echo@v1"], "kinds": ["service_account"]}],
    }))  # fmt: skip
    assert "version 1" in tg(env, "policy", "set", "--tenant", tenant_id, "--file", str(policy)).stdout
    assert '"bots-echo"' in tg(env, "policy", "show", "--tenant", tenant_id).stdout
    assert _eventually(lambda: httpx.post(echo, json={"arguments": {"text": "x"}}, headers=headers).status_code == 200)

    switch_id = tg(
        env, "kill-switch", "set", "--scope", "tool", "--target", "echo@v1", "--reason", "drill"
    ).stdout.strip()
    assert "drill" in tg(env, "kill-switch", "list").stdout
    blocked = lambda: httpx.post(echo, json={"arguments": {"text": "x"}}, headers=headers).json().get("code")  # noqa: E731
    assert _eventually(lambda: blocked() == "kill_switch")
    tg(env, "kill-switch", "clear", switch_id)
    assert _eventually(lambda: blocked() is None)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grants": [{"id": "x", "tools": ["shell@v1"]}]}))
    refused = tg(env, "policy", "set", "--tenant", tenant_id, "--file", str(bad), ok=False)
    # shell@v1 is a built-in of self_hosted: in saas a policy naming it is refused as impossible.
    assert (refused.returncode, "tool 'shell@v1' cannot exist in saas mode" in refused.stderr) == (2, True)


def _eventually(check: Callable[[], bool], within: float = 1.0) -> bool:
    """True once ``check`` holds; changes made by another process must arrive within a second."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
