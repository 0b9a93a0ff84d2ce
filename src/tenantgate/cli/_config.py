"""`tenantgate config check`: validate env files before they reach a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantgate.cli._common import err, out
from tenantgate.config import Settings
from tenantgate.errors import ConfigurationError

__all__ = ["config_app"]

config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)


@config_app.command("check")
def config_check(
    files: Annotated[list[Path], typer.Argument(help="Env files (TENANTGATE_*=value lines), checked one by one.")],
) -> None:
    """Check each env file as `serve` and `worker` would at start-up: names, values, unsafe combinations.

    Only the file counts (the process environment is ignored). Exit 1 if any file is refused;
    transport warnings (saas links without verified TLS) are printed but do not fail the check.
    """
    failed = 0
    for path in files:
        try:
            settings = Settings.from_env_file(path)
            settings.check()
        except ConfigurationError as exc:
            failed += 1
            err.print(f"[red]refused[/red] {path}: {exc.message}")
            continue
        except ValueError as exc:  # pydantic's ValidationError: the values themselves
            failed += 1
            err.print(f"[red]refused[/red] {path}: {exc}")
            continue
        for warning in settings.transport_warnings():
            err.print(f"[bold red]WARNING[/bold red] {path}: {warning}")
        out.print(f"ok {path} ({settings.mode.value})")
    if failed:
        raise typer.Exit(1)
