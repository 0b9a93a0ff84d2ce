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
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tenantgate.errors import ConfigurationError
from tenantgate.store import write_private
from tenantgate.vault._aead import KEY_BYTES
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable
from tenantgate.vault._tenant_secrets import TenantSecrets

__all__ = ["KeyProvider", "LocalKeyFile", "TenantKeyShredding", "context_bytes", "decode_master_keys"]

# A kek_id ending in this was wrapped under the tenant's own KEK (master KEK + tenant secret).
_TENANT_SUFFIX = ":t"


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


@runtime_checkable
class TenantKeyShredding(Protocol):
    """A provider that holds something per tenant outside the database and can destroy it.

    After :meth:`destroy_tenant`, data keys it wrapped for that tenant never unwrap again,
    even from a database backup taken earlier (crypto-shredding that survives backups).
    """

    def destroy_tenant(self, tenant_id: str) -> bool:
        """Destroy the tenant's key material; True if there was any."""
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

    With ``tenant_secrets`` (the default installation gives it), each tenant's data keys are
    wrapped under a per-tenant KEK: HKDF of the master KEK with the tenant's secret, a file
    outside the database. :meth:`destroy_tenant` deletes that file, so the tenant's wrapped
    data keys in any database backup are useless. Keys wrapped before (kek ids without the
    ``:t`` suffix) still open with the master KEK alone until ``vault rotate-kek`` re-wraps them.
    """

    name = "local"
    _NONCE = 12

    def __init__(
        self, keys: Sequence[bytes], *, path: Path | None = None, tenant_secrets: TenantSecrets | None = None
    ) -> None:
        if not keys:
            raise ConfigurationError("A local key provider needs at least one master key.")
        self._path = path
        self._tenant_secrets = tenant_secrets
        self._lock = threading.Lock()
        self._keys: dict[str, AESGCM] = {}
        self._raw: dict[str, bytes] = {}
        self._current = ""
        self._install(list(keys))

    @classmethod
    def from_master_key(cls, text: str, *, tenant_secrets: TenantSecrets | None = None) -> LocalKeyFile:
        """KEKs from ``TENANTGATE_MASTER_KEY`` (shared by every process of an installation)."""
        return cls(decode_master_keys(text), tenant_secrets=tenant_secrets)

    @classmethod
    def open(cls, path: Path, *, tenant_secrets: TenantSecrets | None = None) -> LocalKeyFile:
        """The key file at ``path``, created with one fresh KEK (mode 0600) on first start."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            write_private(path, cls._render(_kek_id(key), [key]))
        return cls(cls._read(path), path=path, tenant_secrets=tenant_secrets)

    def _install(self, keys: list[bytes]) -> None:
        self._keys = {_kek_id(k): AESGCM(k) for k in keys}
        self._raw = {_kek_id(k): k for k in keys}
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
            kek_id, kek, raw = self._current, self._keys[self._current], self._raw[self._current]
        tenant_id = context.get("tenant_id")
        if self._tenant_secrets is not None and tenant_id is not None:
            kek_id = kek_id + _TENANT_SUFFIX
            kek = _tenant_kek(raw, self._tenant_secrets.get_or_create(tenant_id), tenant_id)
        nonce = os.urandom(self._NONCE)
        return kek_id, nonce + kek.encrypt(nonce, dek, kek_id.encode("ascii") + context_bytes(context))

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        kek = self._tenant_kek(kek_id, context) if kek_id.endswith(_TENANT_SUFFIX) else self._kek(kek_id)
        if kek is None or len(wrapped) <= self._NONCE:
            raise CredentialUnreadable
        try:
            return kek.decrypt(
                wrapped[: self._NONCE], wrapped[self._NONCE :], kek_id.encode("ascii") + context_bytes(context)
            )
        except InvalidTag:
            raise CredentialUnreadable from None

    def _tenant_kek(self, kek_id: str, context: Mapping[str, str]) -> AESGCM | None:
        tenant_id = context.get("tenant_id")
        if self._tenant_secrets is None or tenant_id is None or self._kek(kek_id.removesuffix(_TENANT_SUFFIX)) is None:
            return None
        secret = self._tenant_secrets.get(tenant_id)
        if secret is None:  # destroyed by a purge (or never made here): this key is gone for good
            return None
        with self._lock:
            raw = self._raw.get(kek_id.removesuffix(_TENANT_SUFFIX))
        return None if raw is None else _tenant_kek(raw, secret, tenant_id)

    def destroy_tenant(self, tenant_id: str) -> bool:
        """Delete the tenant's secret: its data keys, wherever a copy of them is stored, stop unwrapping."""
        return self._tenant_secrets.destroy(tenant_id) if self._tenant_secrets is not None else False

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


def _tenant_kek(master: bytes, secret: bytes, tenant_id: str) -> AESGCM:
    """The tenant's KEK: HKDF-SHA256 of the master KEK, salted with the tenant's secret, bound to its id."""
    info = b"tenantgate/tenant-kek\x00" + tenant_id.encode("ascii")
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=secret, info=info).derive(master))
