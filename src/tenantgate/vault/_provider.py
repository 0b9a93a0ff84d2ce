"""Key-encryption keys (KEKs) behind one interface, and the default provider: a local key file.

A provider only wraps and unwraps tenant data keys; it never sees a credential. Each
wrapped data key names the KEK that wrapped it (``kek_id``), so old KEKs stay usable until
``tenantgate vault rotate-kek`` has re-wrapped everything under the current one.

Providers are synchronous (hvac and boto3 are); the vault calls them off the event loop.
Every provider raises :class:`CredentialUnreadable` for a wrapped key it cannot open and
:class:`KeyProviderUnavailable` when it cannot be reached: nothing falls back to plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantgate.errors import ConfigurationError
from tenantgate.store import write_private
from tenantgate.vault._aead import KEY_BYTES
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable

__all__ = ["KeyProvider", "LocalKeyFile", "context_bytes", "decode_master_keys"]


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys under key-encryption keys it holds; rotates to a new KEK."""

    name: str

    @property
    def current_kek_id(self) -> str:
        """The KEK that :meth:`wrap` uses now."""
        ...

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> tuple[str, bytes]:
        """Wrap ``dek`` under the current KEK, bound to ``context``; return (kek id, wrapped bytes)."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        """Unwrap a data key wrapped under ``kek_id`` with the same ``context``."""
        ...

    def rotate(self) -> str:
        """Make a new KEK current (older ones stay for unwrapping); return its id."""
        ...


def context_bytes(context: Mapping[str, str]) -> bytes:
    """Canonical bytes of a wrap context (sorted keys, compact JSON), used as associated data."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode("utf-8")


def _kek_id(key: bytes) -> str:
    # A fingerprint, not the key: ids are stored beside every wrapped data key.
    return "local:" + hashlib.sha256(b"tenantgate/kek-id\x00" + key).hexdigest()[:16]


def decode_master_keys(text: str) -> list[bytes]:
    """``TENANTGATE_MASTER_KEY``: base64 32-byte keys, comma-separated, the current one first."""
    keys: list[bytes] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            key = base64.b64decode(part, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigurationError(
                "TENANTGATE_MASTER_KEY must be base64 of 32 random bytes (comma-separated, current first): "
                "generate one with `python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'`."
            )
        keys.append(key)
    if not keys:
        raise ConfigurationError("TENANTGATE_MASTER_KEY is empty.")
    return keys


class LocalKeyFile:
    """KEKs held by this installation: ``data_dir/master.key`` (0600), or given as ``TENANTGATE_MASTER_KEY``.

    The file keeps every KEK by id with one marked current, so rotation adds a key and old
    wrapped data keys still open until they are re-wrapped. Another process that meets a
    KEK id it does not know re-reads the file once (it may have been rotated meanwhile).
    """

    name = "local"
    _NONCE = 12

    def __init__(self, keys: Sequence[bytes], *, path: Path | None = None) -> None:
        if not keys:
            raise ConfigurationError("A local key provider needs at least one master key.")
        self._path = path
        self._lock = threading.Lock()
        self._keys: dict[str, AESGCM] = {}
        self._current = ""
        self._install(list(keys))

    @classmethod
    def from_master_key(cls, text: str) -> LocalKeyFile:
        """KEKs from ``TENANTGATE_MASTER_KEY`` (shared by every process of an installation)."""
        return cls(decode_master_keys(text))

    @classmethod
    def open(cls, path: Path) -> LocalKeyFile:
        """The key file at ``path``, created with one fresh KEK (mode 0600) on first start."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            write_private(path, cls._render(_kek_id(key), [key]))
        return cls(cls._read(path), path=path)

    def _install(self, keys: list[bytes]) -> None:
        self._keys = {_kek_id(k): AESGCM(k) for k in keys}
        self._current = _kek_id(keys[0])

    @staticmethod
    def _render(current: str, keys: list[bytes]) -> str:
        by_id = {_kek_id(k): base64.b64encode(k).decode("ascii") for k in keys}
        return json.dumps({"format": 1, "current": current, "keys": by_id}, indent=2) + "\n"

    @staticmethod
    def _read(path: Path) -> list[bytes]:
        """The file's keys, the current one first."""
        if path.stat().st_mode & 0o077:
            raise ConfigurationError(f"{path} is readable by other users: run `chmod 600 {path}`.")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            keys = {kid: base64.b64decode(value, validate=True) for kid, value in doc["keys"].items()}
            current = keys[doc["current"]]
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ConfigurationError(f"{path} is not a tenantgate key file; restore it from backup.") from exc
        if any(len(k) != KEY_BYTES or _kek_id(k) != kid for kid, k in keys.items()):
            raise ConfigurationError(f"{path} holds a damaged key; restore it from backup.")
        return [current, *(k for k in keys.values() if k != current)]

    @property
    def current_kek_id(self) -> str:
        return self._current

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> tuple[str, bytes]:
        with self._lock:
            kek_id, kek = self._current, self._keys[self._current]
        nonce = os.urandom(self._NONCE)
        return kek_id, nonce + kek.encrypt(nonce, dek, kek_id.encode("ascii") + context_bytes(context))

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        kek = self._kek(kek_id)
        if kek is None or len(wrapped) <= self._NONCE:
            raise CredentialUnreadable
        try:
            return kek.decrypt(
                wrapped[: self._NONCE], wrapped[self._NONCE :], kek_id.encode("ascii") + context_bytes(context)
            )
        except InvalidTag:
            raise CredentialUnreadable from None

    def _kek(self, kek_id: str) -> AESGCM | None:
        with self._lock:
            kek = self._keys.get(kek_id)
            if kek is None and self._path is not None:
                try:
                    self._install(self._read(self._path))
                except OSError as exc:
                    raise KeyProviderUnavailable(f"The key file {self._path} cannot be read.") from exc
                kek = self._keys.get(kek_id)
            return kek

    def rotate(self) -> str:
        """File: add a fresh KEK and make it current. Environment: the operator rotates by listing a new key first."""
        if self._path is None:
            return self._current
        with self._lock:
            keys = self._read(self._path)
            new = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            write_private(self._path, self._render(_kek_id(new), [new, *keys]))
            self._install([new, *keys])
            return self._current
