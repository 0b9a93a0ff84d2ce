"""Several tenantgate processes on one machine: N API servers and M workers sharing one installation.

The shape of a scale-out deployment (stateless API processes, workers elsewhere, PostgreSQL the
system of record, Redis for shared rate limits) as subprocesses on loopback::

    config = ClusterConfig.of(installation.settings, redis_url=REDIS_URL, plugins=("tests.fixture_tools:PLUGIN",))
    with Cluster(config, tmp_path) as cluster:
        first, second = cluster.start_apis(2)        # each answered /healthz
        worker = cluster.start_worker()
        cluster.kill(worker)                         # SIGKILL, reaped
        again = cluster.replace(worker)              # same kind (an API keeps its port)
        print(cluster.log(again))
    # leaving the block: SIGTERM to all, SIGKILL to whoever is still there after the grace

Every process runs with only the ``TENANTGATE_*`` variables the config gives (none inherited), its
own data directory, and the one tenant-keys directory of the installation: the local key provider
keeps each tenant's secret there, and every process of an installation must see the same ones.
Output goes to a log file per process (a pipe nobody reads would stall a busy server).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx

from tenantgate.config import Settings

__all__ = ["Cluster", "ClusterConfig", "ClusterError", "Node", "free_port"]

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
Kind = Literal["api", "worker"]


class ClusterError(Exception):
    """A process did not come up (its log's tail is in the message), or the cluster was misused."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """What every process of the installation shares. Plain values: they become environment variables."""

    database_url: str  # the app role
    admin_database_url: str
    owner_database_url: str | None = None
    db_role_prefix: str
    pepper: str
    master_key: str | None = None  # the local key provider's KEK; None with another provider (see ``env``)
    tenant_keys_dir: Path | None = None  # None: one directory under the cluster's root, shared by all
    plugins: tuple[str, ...] = ()
    redis_url: str | None = None
    mode: str = "saas"
    directives: str = "queue"
    log_level: str = "warning"
    env: Mapping[str, str] = field(default_factory=dict)  # further TENANTGATE_* settings (key provider, fakes)
    # The argv after ``python``: the real CLI unless a test needs its own entry (e.g. a loopback egress door).
    serve_command: tuple[str, ...] = ("-m", "tenantgate", "serve")
    worker_command: tuple[str, ...] = ("-m", "tenantgate", "worker")
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 30.0

    @classmethod
    def of(cls, settings: Settings, **changes: Any) -> ClusterConfig:
        """The installation ``settings`` describe (an external database), with ``changes``.

        The tenant-keys directory is the one ``settings`` use, so a test process holding these
        settings and the cluster's processes open each other's credentials.
        """
        if settings.database_url is None or settings.admin_database_url is None or settings.pepper is None:
            raise ClusterError("a cluster shares an external database: the settings need its URLs and a pepper")
        config = cls(
            database_url=settings.database_url.get_secret_value(),
            admin_database_url=settings.admin_database_url.get_secret_value(),
            owner_database_url=settings.owner_database_url.get_secret_value() if settings.owner_database_url else None,
            db_role_prefix=settings.db_role_prefix,
            pepper=settings.pepper.get_secret_value(),
            master_key=settings.master_key.get_secret_value() if settings.master_key else None,
            tenant_keys_dir=settings.tenant_keys_dir,
            mode=settings.mode.value,
        )
        return replace(config, **changes)

    def environment(self, data_dir: Path, tenant_keys_dir: Path) -> dict[str, str]:
        """A process's environment: the parent's without any TENANTGATE_* variable, then this config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
        optional = {
            "TENANTGATE_OWNER_DATABASE_URL": self.owner_database_url,
            "TENANTGATE_MASTER_KEY": self.master_key,
            "TENANTGATE_REDIS_URL": self.redis_url,
            "TENANTGATE_PLUGINS": ",".join(self.plugins) or None,
        }
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
                "TENANTGATE_MODE": self.mode,
                "TENANTGATE_DATA_DIR": str(data_dir),
                "TENANTGATE_VAULT_TENANT_KEYS_DIR": str(tenant_keys_dir),
                "TENANTGATE_DATABASE_URL": self.database_url,
                "TENANTGATE_ADMIN_DATABASE_URL": self.admin_database_url,
                "TENANTGATE_DB_ROLE_PREFIX": self.db_role_prefix,
                "TENANTGATE_PEPPER": self.pepper,
                "TENANTGATE_DIRECTIVES": self.directives,
                "TENANTGATE_LOG_LEVEL": self.log_level,
                **{name: value for name, value in optional.items() if value is not None},
                **self.env,
            }
        )
        return env


@dataclass
class Node:
    """One process of the cluster: an API server (with its port) or a worker."""

    name: str
    kind: Kind
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path
    port: int | None = None

    @property
    def url(self) -> str:
        """The API server's base URL."""
        if self.port is None:
            raise ClusterError(f"{self.name} is a worker: it serves no HTTP")
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def pid(self) -> int:
        return self.process.pid


class Cluster:
    """Starts, kills, replaces and stops the processes of one installation; a context manager."""

    def __init__(self, config: ClusterConfig, root: Path) -> None:
        self.config = config
        self.root = root
        self.tenant_keys_dir = config.tenant_keys_dir or root / "tenant-keys"
        self.nodes: list[Node] = []
        self._counts: dict[Kind, int] = {"api": 0, "worker": 0}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def apis(self) -> list[Node]:
        """The API servers still running, in start order."""
        return [n for n in self.nodes if n.kind == "api" and n.alive]

    @property
    def workers(self) -> list[Node]:
        """The workers still running, in start order."""
        return [n for n in self.nodes if n.kind == "worker" and n.alive]

    def start_api(self, port: int | None = None) -> Node:
        """An API server on ``port`` (a free one by default), returned once its /healthz answers 200."""
        port = port or free_port()
        node = self._spawn("api", [*self.config.serve_command, "--port", str(port)], port)
        self.wait_healthy(node)
        return node

    def start_apis(self, count: int) -> list[Node]:
        """``count`` API servers, started together, each healthy when this returns."""
        nodes = [self._spawn("api", [*self.config.serve_command, "--port", str(p)], p) for p in self._ports(count)]
        for node in nodes:
            self.wait_healthy(node)
        return nodes

    def start_worker(self) -> Node:
        """A worker process (it has no health endpoint: `wait_for_log` waits for a line of its own)."""
        return self._spawn("worker", list(self.config.worker_command), None)

    def start_workers(self, count: int) -> list[Node]:
        return [self.start_worker() for _ in range(count)]

    def kill(self, node: Node) -> int:
        """SIGKILL, no grace; waits for the process to be gone and returns its exit status."""
        if node.alive:
            os.kill(node.pid, signal.SIGKILL)
        return node.process.wait(self.config.stop_timeout_s)

    def replace(self, node: Node) -> Node:
        """A new process of the same kind (an API server on the same port), once ``node`` is gone."""
        if node.alive:
            raise ClusterError(f"{node.name} is still running: kill or stop it first")
        if node.kind == "api":
            return self.start_api(node.port)
        return self.start_worker()

    def log(self, node: Node) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return node.log_path.read_text(encoding="utf-8", errors="replace")

    def logs(self) -> str:
        """Every process's log, each under a header line: for a failing test's message."""
        return "".join(f"--- {n.name} (pid {n.pid}) ---\n{self.log(n)}" for n in self.nodes)

    def wait_healthy(self, node: Node, timeout_s: float | None = None) -> None:
        """Until ``GET /healthz`` answers 200; `ClusterError` with the log if the process exits or time runs out."""
        deadline = time.monotonic() + (timeout_s or self.config.start_timeout_s)
        while True:
            try:
                if httpx.get(f"{node.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not node.alive or time.monotonic() > deadline:
                self._give_up(node, "did not answer /healthz")
            time.sleep(0.2)

    def wait_for_log(self, node: Node, text: str, timeout_s: float | None = None) -> None:
        """Until ``text`` appears in the process's log; `ClusterError` if it exits or time runs out first."""
        deadline = time.monotonic() + (timeout_s or self.config.start_timeout_s)
        while text not in self.log(node):
            if not node.alive or time.monotonic() > deadline:
                self._give_up(node, f"never logged {text!r}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to every running process, then SIGKILL to any still there after ``stop_timeout_s``."""
        running = [n for n in self.nodes if n.alive]
        for node in running:
            node.process.terminate()
        deadline = time.monotonic() + self.config.stop_timeout_s
        for node in running:
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def _ports(self, count: int) -> list[int]:
        ports: set[int] = set()
        while len(ports) < count:
            ports.add(free_port())
        return sorted(ports)

    def _spawn(self, kind: Kind, argv: list[str], port: int | None) -> Node:
        self._counts[kind] += 1
        name = f"{kind}{self._counts[kind]}"
        data_dir = self.root / name
        data_dir.mkdir(parents=True, exist_ok=True)
        self.tenant_keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_path = self.root / f"{name}.log"
        env = self.config.environment(data_dir, self.tenant_keys_dir)
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen([sys.executable, *argv], env=env, cwd=ROOT, stdout=log, stderr=log)
        node = Node(name=name, kind=kind, process=process, log_path=log_path, data_dir=data_dir, port=port)
        self.nodes.append(node)
        return node

    def _give_up(self, node: Node, what: str) -> None:
        if node.alive:
            self.kill(node)
        raise ClusterError(f"{node.name} {what} (exit status {node.process.poll()}):\n{self.log(node)[-4000:]}")
