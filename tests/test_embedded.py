"""The embedded server's set-up: passwords everywhere, private files, clear errors when they are damaged."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tenantgate.errors import ConfigurationError
from tenantgate.store import EmbeddedPostgres


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tmp tree: see tests/conftest.py.
    root = Path(tempfile.mkdtemp(prefix="tenantgate-embedded-"))
    yield root / "data"
    shutil.rmtree(root, ignore_errors=True)


def test_first_start_locks_every_role_behind_a_password(data_dir: Path) -> None:
    embedded = EmbeddedPostgres(data_dir)
    try:
        urls = embedded.start()
        again = EmbeddedPostgres(data_dir).start()  # a second process joining the running server
        assert again == urls
        with psycopg.connect(urls.app) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("tenantgate_app",)
        for role in ("postgres", "tenantgate_app", "tenantgate_admin"):
            no_password = urls.app.replace(urls.app.split("//")[1].split("@")[0], role)
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(no_password)
    finally:
        embedded.stop()
    assert not (data_dir / "pg" / "postmaster.pid").exists()


def test_lost_or_exposed_credentials_are_clear_errors(data_dir: Path) -> None:
    embedded = EmbeddedPostgres(data_dir)
    try:
        embedded.start()
        credentials = data_dir / "db-credentials.json"
        credentials.chmod(0o644)
        with pytest.raises(ConfigurationError, match="readable by other users"):
            EmbeddedPostgres(data_dir).start()
        credentials.chmod(0o600)
        credentials.rename(data_dir / "moved-away.json")
        with pytest.raises(ConfigurationError, match="is missing but the database"):
            EmbeddedPostgres(data_dir).start()
    finally:
        embedded.stop()
