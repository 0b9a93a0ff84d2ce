"""The shell sandbox: what a command can see, reach and consume, checked from outside the sandbox.

Every test here runs real ``bwrap``. They are skipped only where bubblewrap cannot start a
sandbox, which is checked by actually starting one.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog

from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode
from tenantgate.tools import Executor, ToolRegistry, builtin
from tenantgate.tools.builtin import INSTALL_HINT, Limits, Sandbox, Workspace, Workspaces, shell_tools

LIMITS = Limits(cpu_seconds=1, memory_bytes=256 * 1024 * 1024, file_bytes=1024 * 1024, processes=48, open_files=64)
_PROBE = Sandbox.for_this_process(limits=LIMITS).probe()
needs_bwrap = pytest.mark.skipif(_PROBE is not None, reason=f"bubblewrap cannot run a sandbox here: {_PROBE}")


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox.for_this_process(limits=LIMITS, output_bytes=4096)


@pytest.fixture
def spaces(tmp_path: Path, sandbox: Sandbox) -> Workspaces:
    return Workspaces(tmp_path / "data" / "workspaces", owner=sandbox.host_user)


def _workspace(spaces: Workspaces) -> Workspace:
    space = spaces.for_tenant(system_context(uuid.uuid4(), mode=DeploymentMode.SELF_HOSTED, request_id="t"))
    space.ensure()
    return space


@pytest.fixture
def ws(spaces: Workspaces) -> Workspace:
    return _workspace(spaces)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except FileNotFoundError:
                continue
    return count


def _running_with(marker: str) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    return True
            except (FileNotFoundError, ProcessLookupError):
                continue
    return False


def test_missing_bubblewrap_is_reported_with_the_install_hint() -> None:
    problem = Sandbox(bwrap="/nonexistent/bwrap").probe()
    assert problem is not None
    assert "apt-get install bubblewrap" in problem
    assert Sandbox(kind="none", bwrap="/nonexistent/bwrap").probe() is None
    assert "TENANTGATE_SHELL_SANDBOX=none" in INSTALL_HINT


@needs_bwrap
async def test_commands_run_in_the_workspace_as_an_unprivileged_user(sandbox: Sandbox, ws: Workspace) -> None:
    ws.write_text("in.txt", "from the file tools")
    done = await sandbox.run(ws.directory, "id -u; pwd; cat in.txt; echo made > out.txt", timeout_s=20)
    assert (done.exit_code, done.signal, done.timed_out) == (0, None, False)
    uid, cwd, content = done.stdout.splitlines()
    assert uid != "0"
    assert cwd == "/workspace"
    assert content == "from the file tools"
    assert ws.read_text("out.txt") == "made\n"  # and the file tools read what the shell wrote


@needs_bwrap
async def test_nothing_outside_the_workspace_is_visible(
    sandbox: Sandbox, spaces: Workspaces, ws: Workspace, tmp_path: Path
) -> None:
    data_secret = tmp_path / "data" / "pepper"
    data_secret.write_text("DATA-DIR-SECRET")
    other = _workspace(spaces)
    other.write_text("theirs.txt", "OTHER-TENANT-SECRET")
    command = "; ".join(
        f"cat {p} 2>&1; ls {p.parent} 2>&1"
        for p in (Path("/etc/shadow"), data_secret, other.directory / "theirs.txt", Path("/root/.bashrc"))
    )
    command += "; ls /workspace/..; ls /etc"
    done = await sandbox.run(ws.directory, command, timeout_s=20)
    for secret in ("DATA-DIR-SECRET", "OTHER-TENANT-SECRET", "root:"):
        assert secret not in done.stdout
    assert "No such file or directory" in done.stdout
    top = set(done.stdout.split())
    assert "workspace" in top
    assert {"home", "root", "var", "work", "shadow", "gshadow"}.isdisjoint(top)
    # Writes outside the workspace go nowhere the host keeps.
    done = await sandbox.run(ws.directory, "touch /usr/x 2>&1; echo hi > /tmp/t && cat /tmp/t", timeout_s=20)
    assert "Read-only file system" in done.stdout
    assert "x" not in os.listdir("/usr")


class _Listener:
    """A loopback server that records every connection it receives."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def __aenter__(self) -> _Listener:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[_Listener]:
    async with _Listener() as server:
        yield server


@needs_bwrap
async def test_no_network_unless_the_operator_enables_it(sandbox: Sandbox, ws: Workspace, listener: _Listener) -> None:
    script = f"import socket; socket.create_connection(('127.0.0.1', {listener.port}), timeout=3); print('connected')"
    connect = f'python3 -c "{script}"'
    done = await sandbox.run(ws.directory, connect, timeout_s=20)
    assert done.exit_code != 0
    assert "connected" not in done.stdout
    assert listener.connections == 0
    # The same command with network on reaches the listener: the check above can fail.
    networked = Sandbox.for_this_process(limits=LIMITS, network=True)
    done = await networked.run(ws.directory, connect, timeout_s=20)
    assert done.stdout.strip() == "connected"
    await asyncio.sleep(0.05)
    assert listener.connections == 1


@needs_bwrap
async def test_cpu_limit_kills_a_busy_loop(sandbox: Sandbox, ws: Workspace) -> None:
    done = await sandbox.run(ws.directory, "while :; do :; done", timeout_s=60)
    assert not done.timed_out
    assert done.signal in {"SIGXCPU", "SIGKILL"}


@needs_bwrap
async def test_memory_limit_refuses_a_large_allocation(sandbox: Sandbox, ws: Workspace) -> None:
    done = await sandbox.run(ws.directory, "python3 -c 'b = bytearray(512 * 1024 * 1024); print(len(b))'", timeout_s=30)
    assert done.exit_code != 0
    assert "MemoryError" in done.stderr
    assert "536870912" not in done.stdout


@needs_bwrap
async def test_file_size_limit_stops_a_large_write(sandbox: Sandbox, ws: Workspace) -> None:
    done = await sandbox.run(ws.directory, "head -c 5000000 /dev/zero > big", timeout_s=20)
    assert done.signal == "SIGXFSZ"
    assert (ws.directory / "big").stat().st_size == LIMITS.file_bytes


@needs_bwrap
async def test_a_fork_bomb_stays_bounded_and_is_gone_afterwards(sandbox: Sandbox, ws: Workspace) -> None:
    host_uid = sandbox.host_user[0] if sandbox.host_user else None
    peak = 0
    running = True

    async def watch() -> None:
        nonlocal peak
        while running and host_uid is not None:
            peak = max(peak, _processes_of(host_uid))
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    done = await sandbox.run(ws.directory, "bomb() { bomb | bomb & }; bomb; sleep 2", timeout_s=10)
    running = False
    await watcher
    assert time.monotonic() - started < 15
    assert "fork" in done.stderr.lower()  # the shell reports "Cannot fork": the limit held
    if host_uid is not None:
        assert 0 < peak <= LIMITS.processes
        await asyncio.sleep(0.2)
        assert _processes_of(host_uid) == 0


@needs_bwrap
async def test_wall_clock_timeout_kills_everything_the_command_started(sandbox: Sandbox, ws: Workspace) -> None:
    marker = str(3000 + os.getpid() % 1000)
    started = time.monotonic()
    done = await sandbox.run(ws.directory, f"setsid sleep {marker} & sleep {marker}", timeout_s=1)
    assert done.timed_out
    assert done.signal == "SIGKILL"
    assert time.monotonic() - started < 6
    await asyncio.sleep(0.2)
    assert not _running_with(f"sleep\x00{marker}")


@needs_bwrap
async def test_environment_holds_none_of_the_servers_secrets(
    sandbox: Sandbox, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTGATE_PEPPER", "fake-pepper-value-" + "q" * 32)
    monkeypatch.setenv("TENANTGATE_DATABASE_URL", "postgresql://app:hunter2@db/tenantgate")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-aws-secret")
    done = await sandbox.run(ws.directory, "env; cat /proc/1/environ /proc/self/environ | tr '\\0' '\\n'", timeout_s=20)
    for value in ("fake-pepper-value", "hunter2", "fake-aws-secret", "TENANTGATE"):
        assert value not in done.stdout
    names = {line.split("=", 1)[0] for line in done.stdout.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TMPDIR", "USER", "PWD", "SHLVL", "_", "OLDPWD"}


@needs_bwrap
async def test_output_is_capped_and_flagged(sandbox: Sandbox, ws: Workspace) -> None:
    done = await sandbox.run(ws.directory, "yes | head -c 100000; yes err | head -c 10 >&2", timeout_s=20)
    assert len(done.stdout) == 4096
    assert done.stdout_truncated
    assert done.stderr == "err\nerr\ner"
    assert not done.stderr_truncated


async def test_opting_out_runs_unsandboxed_with_limits_and_a_clean_environment(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTGATE_PEPPER", "fake-pepper-value-" + "q" * 32)
    bare = Sandbox.for_this_process(kind="none", limits=LIMITS)
    nproc = "python3 -c 'import resource; print(resource.getrlimit(resource.RLIMIT_NPROC)[0])'"
    done = await bare.run(ws.directory, f"pwd; env; id -u; {nproc}", timeout_s=20)
    lines = done.stdout.splitlines()
    assert lines[0] == str(ws.directory)
    assert "fake-pepper-value" not in done.stdout
    assert lines[-1] == str(LIMITS.processes)
    assert lines[-2] != "0"  # still not root


async def test_opting_out_is_logged_at_start_up_and_on_every_call(spaces: Workspaces) -> None:
    with structlog.testing.capture_logs() as logs:
        tools, _ = shell_tools(spaces, Sandbox.for_this_process(kind="none", limits=LIMITS))
    assert [(e["event"], e["log_level"]) for e in logs] == [("shell.sandbox_disabled", "warning")]
    registry = ToolRegistry(DeploymentMode.SELF_HOSTED)
    registry.register_available(tools)
    ctx = system_context(uuid.uuid4(), mode=DeploymentMode.SELF_HOSTED, request_id="t")
    executor = Executor(registry=registry)
    for _ in range(2):
        with structlog.testing.capture_logs() as logs:
            result = await executor.run(ctx, "shell@v1", {"command": "echo hi"}, call_id=uuid.uuid4())
        assert result.output["stdout"] == "hi\n"
        assert [(e["event"], e["log_level"]) for e in logs] == [("shell.unsandboxed_call", "warning")]


@needs_bwrap
async def test_a_cancelled_call_leaves_nothing_running(sandbox: Sandbox, ws: Workspace) -> None:
    marker = str(4000 + os.getpid() % 1000)
    task = asyncio.create_task(sandbox.run(ws.directory, f"sleep {marker}", timeout_s=60))
    await asyncio.sleep(0.5)
    assert _running_with(f"sleep\x00{marker}")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert not _running_with(f"sleep\x00{marker}")


def test_public_surface() -> None:
    # The self-hosted part of tools.builtin's surface (the other tool families export theirs beside it).
    assert set(builtin.__all__) >= {
        "INSTALL_HINT", "Entry", "Limits", "Listing", "Sandbox", "SandboxResult", "SandboxUnavailable",
        "Workspace", "Workspaces", "self_hosted_tools", "shell_tools", "workspace_tools",
    }  # fmt: skip
