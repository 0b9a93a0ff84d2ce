"""Running one shell command in a bubblewrap sandbox: the command line, the limits, the run.

The sandbox sees the tenant's workspace read-write at ``/workspace``, ``/usr`` and a few
files of ``/etc`` read-only (never ``/etc/shadow``, the data directory or another tenant's
workspace), a fresh ``/tmp``, its own ``/proc`` and ``/dev``, and no network unless the
operator enabled it. It runs in its own PID, IPC, UTS, network and mount namespaces, as a
user that is not root, with an environment that holds nothing of the server's.

Limits are rlimits set before ``bwrap`` starts and inherited by everything inside. The
process-count limit does not bind host root (the kernel exempts uid 0), so:

- when the server runs as root, ``bwrap`` builds the sandbox as root without a user
  namespace, then ``setpriv`` becomes the unprivileged host user (65534 by default),
  dropping every capability, before the command runs: the limit then binds;
- otherwise ``bwrap`` runs as the server's user in a user namespace (uid 65534 inside);
  the process limit then counts that user's processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["INSTALL_HINT", "Limits", "Sandbox", "SandboxResult"]

INSTALL_HINT = (
    "bubblewrap is required to run shell commands safely: install it with `apt-get install bubblewrap` "
    "(Debian/Ubuntu) or `dnf install bubblewrap`, then restart tenantgate. To run commands without a "
    "sandbox anyway, set TENANTGATE_SHELL_SANDBOX=none (unsafe: commands then see the whole machine)."
)
SANDBOX_UID = 65534  # nobody
_PATH = "/usr/local/bin:/usr/bin:/bin"
_SETPRIV = "/usr/bin/setpriv"
# The few /etc files programs need to start and name things; nothing secret (no shadow, no ssh keys).
_ETC = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
    "passwd", "group", "hosts", "protocols", "services", "mime.types", "ssl/certs", "ca-certificates",
)  # fmt: skip
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_DRAIN_AFTER_KILL_S = 2.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-process resource limits inside the sandbox."""

    cpu_seconds: int = 30
    memory_bytes: int = 1024 * 1024 * 1024
    file_bytes: int = 64 * 1024 * 1024
    processes: int = 64
    open_files: int = 256

    def apply(self) -> None:
        """Set the rlimits of the calling process (the child, just before it executes)."""
        # CPU: the soft limit sends SIGXCPU, the hard one a second later SIGKILL.
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_bytes, self.file_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (self.processes, self.processes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a command ended and what it printed (each stream capped)."""

    exit_code: int | None
    signal: str | None
    timed_out: bool
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    duration_ms: float


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


async def _capture(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            truncated = True  # keep reading: a writer blocked on a full pipe would never end
    return bytes(kept), truncated


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How shell commands run: ``bubblewrap`` (default) or ``none`` (the operator's explicit opt-out)."""

    kind: Literal["bubblewrap", "none"] = "bubblewrap"
    bwrap: str = "bwrap"
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    output_bytes: int = 64 * 1024
    # The host user commands run as when the server is root; None: the server's own user.
    host_user: tuple[int, int] | None = None

    @classmethod
    def for_this_process(cls, **options: object) -> Sandbox:
        """A sandbox whose host user is ``nobody`` when this process is root, else this process's user."""
        host_user = (SANDBOX_UID, SANDBOX_UID) if os.geteuid() == 0 else None
        return cls(host_user=host_user, **options)  # type: ignore[arg-type]

    def bwrap_argv(self, workspace: Path, command: str) -> list[str]:
        """The full ``bwrap`` command line for one shell command."""
        argv = [self.bwrap]
        if self.host_user is not None:
            # Root builds the sandbox without a user namespace; setpriv drops to the host user below.
            argv += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            if not self.network:
                argv.append("--unshare-net")
        else:
            argv += ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
            if self.network:
                argv.append("--share-net")
        argv += ["--die-with-parent", "--new-session", "--clearenv"]
        env = {"PATH": _PATH, "HOME": "/workspace", "LANG": "C.UTF-8", "TMPDIR": "/tmp", "USER": "nobody"}  # noqa: S108 - the sandbox's own fresh /tmp
        for name, value in env.items():
            argv += ["--setenv", name, value]
        argv += ["--ro-bind", "/usr", "/usr"]
        for name in _ROOT_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        # Parents bwrap creates on its own are 0700 (root's): make /etc readable to the sandbox user.
        argv += ["--perms", "0755", "--dir", "/etc", "--perms", "0755", "--dir", "/etc/ssl"]
        etc = [*_ETC, "resolv.conf"] if self.network else list(_ETC)
        for name in etc:
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        argv += ["--bind", str(workspace), "/workspace"]
        argv += ["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "--chdir", "/workspace"]  # noqa: S108
        if self.host_user is not None:
            uid, gid = self.host_user
            argv += [
                _SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
            ]  # fmt: skip
        argv += ["/bin/sh", "-c", command]
        return argv

    def probe(self) -> str | None:
        """Try the sandbox once (``true`` inside it). None when it works, else why not, with the fix."""
        if self.kind == "none":
            return None
        if shutil.which(self.bwrap) is None:
            return f"The bubblewrap binary {self.bwrap!r} was not found. {INSTALL_HINT}"
        if self.host_user is not None and not Path(_SETPRIV).exists():
            return f"{_SETPRIV} (util-linux) is needed to drop root inside the sandbox. Install util-linux."
        try:
            with tempfile.TemporaryDirectory(prefix="tenantgate-probe-") as probe_dir:
                done = subprocess.run(  # noqa: S603 - a fixed argv, no shell on the host
                    self.bwrap_argv(Path(probe_dir), "true"),
                    env={"PATH": _PATH},
                    capture_output=True,
                    timeout=20,
                    check=False,
                    preexec_fn=self.limits.apply,  # rlimits are set in the child, before it executes
                )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start a sandbox here ({exc}). {INSTALL_HINT}"
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip()[:300]
            return f"bubblewrap could not start a sandbox here ({detail or done.returncode}). {INSTALL_HINT}"
        return None

    def _argv(self, workspace: Path, command: str) -> list[str]:
        if self.kind == "bubblewrap":
            return self.bwrap_argv(workspace, command)
        return ["/bin/sh", "-c", command]

    async def run(self, workspace: Path, command: str, *, timeout_s: float) -> SandboxResult:
        """Run ``command`` with ``workspace`` as its directory; kill everything at ``timeout_s``."""
        started = time.perf_counter()
        unsandboxed = self.kind == "none"
        user = self.host_user if unsandboxed else None  # bwrap itself drops to the host user via setpriv
        proc = await asyncio.create_subprocess_exec(
            *self._argv(workspace, command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Nothing of the server's environment (keys, peppers, database URLs) reaches the child.
            env={"PATH": _PATH, "HOME": str(workspace), "LANG": "C.UTF-8"} if unsandboxed else {"PATH": _PATH},
            cwd=str(workspace) if unsandboxed else "/",
            start_new_session=True,  # one process group to kill at the timeout
            preexec_fn=self.limits.apply,  # rlimits are set in the child, before it executes
            user=user[0] if user else None,
            group=user[1] if user else None,
            extra_groups=[] if user else None,
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        out = asyncio.ensure_future(_capture(proc.stdout, self.output_bytes))
        err = asyncio.ensure_future(_capture(proc.stderr, self.output_bytes))
        timed_out = False
        try:
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                timed_out = True
                self._kill(proc)
                await proc.wait()
            # Output still held open by a straggler must not hold the call: give it a moment.
            done, _ = await asyncio.wait({out, err}, timeout=_DRAIN_AFTER_KILL_S)
        finally:
            if proc.returncode is None:  # cancelled (the executor's timeout): leave nothing running
                self._kill(proc)
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(proc.wait())
            for task in (out, err):
                if not task.done():
                    task.cancel()
        stdout, stdout_cut = out.result() if out in done else (b"", True)
        stderr, stderr_cut = err.result() if err in done else (b"", True)
        code = proc.returncode
        sig: str | None = None
        if code is not None and code < 0:
            sig, code = _signal_name(-code), None
        elif code is not None and 128 < code <= 128 + 64:
            # bwrap and sh report a command killed by signal N as 128 + N.
            sig = _signal_name(code - 128)
        return SandboxResult(
            exit_code=code,
            signal=sig,
            timed_out=timed_out,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            stdout_truncated=stdout_cut,
            stderr_truncated=stderr_cut,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        # The whole group: bwrap (whose death takes the sandbox's PID namespace with it) or,
        # without a sandbox, the shell and what it started.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
