"""Where artifact bytes live: a storage interface and the local directory backend.

Storage keys are opaque (``<tenant id>/<random hex>``): they name the owning tenant, so a
purge can find everything of one tenant, and reveal nothing else. The row in
``tenantgate.artifacts`` is the only way to a key; storage itself makes no access decision.
A backend either leaves signed URLs to tenantgate (``presigns`` false: the local directory)
or mints them itself (S3: presigned GETs, revoked by moving the object to a new key).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from tenantgate.errors import ConfigurationError, InvalidInput, TenantgateError

__all__ = [
    "ArtifactStorage",
    "ArtifactStorageUnavailable",
    "LocalStorage",
    "check_storage_key",
    "check_tenant_prefix",
    "new_storage_key",
    "tenant_prefix",
]

_KEY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[0-9a-f]{32}$")
_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/$")
_CHUNK = 64 * 1024


class ArtifactStorageUnavailable(TenantgateError):
    """The artifact storage backend cannot be reached or refused the request; nothing was served or changed."""

    code = "artifact_storage_unavailable"


def new_storage_key(tenant_id: uuid.UUID) -> str:
    """A fresh opaque key for one of ``tenant_id``'s artifacts."""
    return f"{tenant_id}/{secrets.token_hex(16)}"


def check_storage_key(key: str) -> str:
    """``key`` if it has the shape of a storage key; keys come from our rows, but are checked before use."""
    if not _KEY.fullmatch(key):
        raise InvalidInput("Not an artifact storage key.")
    return key


def check_tenant_prefix(prefix: str) -> str:
    """``prefix`` if it is a :func:`tenant_prefix`: prefix operations never reach beyond one tenant."""
    if not _PREFIX.fullmatch(prefix):
        raise InvalidInput("Not a tenant storage prefix.")
    return prefix


def tenant_prefix(tenant_id: uuid.UUID) -> str:
    """The storage prefix under which every object of ``tenant_id`` lives."""
    return f"{tenant_id}/"


class ArtifactStorage(Protocol):
    """Byte storage by opaque key. Blocking: callers run it off the event loop."""

    # True when the backend serves signed URLs itself (``presign``); false when tenantgate signs them.
    presigns: bool

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: a reader sees all of it or nothing."""
        ...

    def chunks(self, key: str) -> Iterator[bytes]:
        """The bytes under ``key``, in chunks. Raises FileNotFoundError before the first chunk if absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def copy(self, source: str, target: str) -> None:
        """Store the bytes under ``source`` also under ``target`` (a new key)."""
        ...

    def presign(self, key: str, *, ttl_s: int, content_type: str, filename: str) -> str:
        """A URL that serves ``key`` as a download for ``ttl_s`` seconds (only when ``presigns``)."""

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Every stored key under ``prefix`` (a :func:`tenant_prefix`), rows or no rows: orphans too."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix`` (a :func:`tenant_prefix`); returns how many were removed."""
        ...


class LocalStorage:
    """A directory on this machine: one 0700 directory per tenant, files 0600, written atomically."""

    presigns = False

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        # Keys come from our own rows, but a key is still checked before it becomes a path.
        tenant, name = check_storage_key(key).split("/")
        return self._root / tenant / name

    def _ensure_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.stat().st_mode & 0o077:
            raise ConfigurationError(f"{path} is accessible by other users: run `chmod 700 {path}`.")

    def put(self, key: str, data: bytes) -> None:
        self._write(self._path(key), [data])

    def _write(self, path: Path, chunks: Iterable[bytes]) -> None:
        self._ensure_dir(self._root)
        self._ensure_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
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

    def copy(self, source: str, target: str) -> None:
        self._write(self._path(target), self.chunks(source))

    def presign(self, key: str, *, ttl_s: int, content_type: str, filename: str) -> str:
        raise NotImplementedError("The local backend's URLs are signed by tenantgate (UrlSigner).")

    def _prefix_dir(self, prefix: str) -> Path:
        return self._root / check_tenant_prefix(prefix).rstrip("/")

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
