"""Where artifact bytes live: a storage interface and the local directory backend.

Storage keys are opaque (``<tenant id>/<random hex>``): they name the owning tenant, so a
purge can find everything of one tenant, and reveal nothing else. The row in
``tenantgate.artifacts`` is the only way to a key; storage itself makes no access decision.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from tenantgate.errors import ConfigurationError, InvalidInput

__all__ = ["ArtifactStorage", "LocalStorage", "new_storage_key", "tenant_prefix"]

_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9a-f]{32}$")
_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/$")
_CHUNK = 64 * 1024


def new_storage_key(tenant_id: uuid.UUID) -> str:
    """A fresh opaque key for one of ``tenant_id``'s artifacts."""
    return f"{tenant_id}/{secrets.token_hex(16)}"


def tenant_prefix(tenant_id: uuid.UUID) -> str:
    """The storage prefix under which every object of ``tenant_id`` lives."""
    return f"{tenant_id}/"


class ArtifactStorage(Protocol):
    """Byte storage by opaque key. Blocking: callers run it off the event loop."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: a reader sees all of it or nothing."""
        ...

    def chunks(self, key: str) -> Iterator[bytes]:
        """The bytes under ``key``, in chunks. Raises FileNotFoundError before the first chunk if absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Every stored key under ``prefix`` (a :func:`tenant_prefix`), rows or no rows: orphans too."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (a :func:`tenant_prefix`); returns how many were removed."""
        ...


class LocalStorage:
    """A directory on this machine: one 0700 directory per tenant, files 0600, written atomically."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        # Keys come from our own rows, but a key is still checked before it becomes a path.
        if not _KEY.fullmatch(key):
            raise InvalidInput("Not an artifact storage key.")
        tenant, name = key.split("/")
        return self._root / tenant / name

    def _ensure_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            raise ConfigurationError(f"{path} is accessible by other users: run `chmod 700 {path}`.")

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._ensure_dir(self._root)
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on one filesystem: never a half-written artifact
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def chunks(self, key: str) -> Iterator[bytes]:
        f = self._path(key).open("rb")  # opened now, so a missing file fails before streaming starts

        def read() -> Iterator[bytes]:
            with f:
                while chunk := f.read(_CHUNK):
                    yield chunk

        return read()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _prefix_dir(self, prefix: str) -> Path:
        if not _PREFIX.fullmatch(prefix):
            raise InvalidInput("Not a tenant storage prefix.")
        return self._root / prefix.rstrip("/")

    def list_prefix(self, prefix: str) -> Iterator[str]:
        directory = self._prefix_dir(prefix)
        if not directory.is_dir():
            return iter(())
        # Everything in the tenant's directory, including leftovers of interrupted writes.
        return (f"{prefix}{entry.name}" for entry in sorted(directory.iterdir()) if entry.is_file())

    def delete_prefix(self, prefix: str) -> int:
        directory = self._prefix_dir(prefix)
        if not directory.is_dir():
            return 0
        removed = 0
        for entry in directory.iterdir():
            if entry.is_file() or entry.is_symlink():
                try:
                    entry.unlink()
                except FileNotFoundError:
                    continue  # removed by a concurrent run: not ours to count
                removed += 1
        with contextlib.suppress(FileNotFoundError, OSError):
            directory.rmdir()  # only when empty; a write racing the purge leaves it for the next run
        return removed
