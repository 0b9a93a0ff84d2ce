"""The server pepper for key hashes: from settings, or generated once into the data directory."""

from __future__ import annotations

import secrets
from pathlib import Path

from tenantgate.config import Settings
from tenantgate.errors import ConfigurationError
from tenantgate.store import write_private

__all__ = ["load_pepper"]


def load_pepper(settings: Settings) -> bytes:
    if settings.pepper is not None:
        return settings.pepper.get_secret_value().encode("utf-8")
    if not settings.embedded:
        raise ConfigurationError("TENANTGATE_PEPPER is required with an external database.")
    path: Path = settings.data_dir / "pepper"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(48))
    if path.stat().st_mode & 0o077:
        raise ConfigurationError(f"{path} is readable by other users: run `chmod 600 {path}`.")
    pepper = path.read_text(encoding="utf-8").strip()
    if len(pepper) < 32:
        raise ConfigurationError(f"{path} holds a pepper shorter than 32 characters.")
    return pepper.encode("utf-8")
