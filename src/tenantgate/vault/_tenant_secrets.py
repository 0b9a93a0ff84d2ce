"""Per-tenant secrets kept outside the database, so destroying one outlives every database backup.

The local key provider derives each tenant's key-encryption key from the master KEK and the
tenant's secret. A pg_dump holds wrapped data keys, never these files: once a tenant's
secret is destroyed (``tenantgate tenants purge``), a backup restored later cannot unwrap
that tenant's data keys even with the master key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import uuid
from pathlib import Path

from tenantgate.errors import ConfigurationError
from tenantgate.vault._aead import KEY_BYTES
from tenantgate.vault._errors import KeyProviderUnavailable

__all__ = ["TenantSecrets"]


class TenantSecrets:
    """One random 32-byte secret per tenant: ``<dir>/<tenant id>.key``, mode 0600, in a 0700 directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, tenant_id: str) -> Path:
        return self.directory / f"{uuid.UUID(tenant_id)}.key"  # a tenant id, never a path

    def _ensure_dir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.stat().st_mode & 0o077:
            raise ConfigurationError(
                f"{self.directory} is accessible by other users: run `chmod 700 {self.directory}`."
            )

    def get(self, tenant_id: str) -> bytes | None:
        """The tenant's secret, or None when it has none (never created, or destroyed)."""
        path = self._path(tenant_id)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyProviderUnavailable(f"The tenant key file {path} cannot be read.") from exc
        try:
            secret = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            secret = b""
        if len(secret) != KEY_BYTES:
            raise ConfigurationError(f"{path} is damaged; restore it from the key directory's backup.")
        return secret

    def get_or_create(self, tenant_id: str) -> bytes:
        """The tenant's secret, created on first use. Safe across processes: the first writer wins."""
        existing = self.get(tenant_id)
        if existing is not None:
            return existing
        self._ensure_dir()
        path = self._path(tenant_id)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic create-if-absent: a concurrent creator's file stands
        finally:
            tmp.unlink(missing_ok=True)
        created = self.get(tenant_id)
        if created is None:
            raise KeyProviderUnavailable(f"The tenant key file {path} vanished while it was created.")
        return created

    def destroy(self, tenant_id: str) -> bool:
        """Delete the tenant's secret for good; True if there was one."""
        path = self._path(tenant_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        # The removal is durable before the caller reports the keys destroyed.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
