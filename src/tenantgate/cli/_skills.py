"""`tenantgate skills`: the platform's skill catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantgate.cli._common import out, run
from tenantgate.errors import InvalidInput
from tenantgate.installation import Services
from tenantgate.skills import parse_skill

__all__ = ["skills_app"]

skills_app = typer.Typer(help="The platform's skill catalog.", no_args_is_help=True)


@skills_app.command("publish")
def skills_publish(
    files: Annotated[list[Path], typer.Argument(help="Skill markdown files (YAML front matter + body).")],
) -> None:
    """Publish skills to every tenant's catalog (a new version when the name exists).

    Every file is read and validated before anything is published.
    """
    sources = []
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"Cannot read {path}: {exc}") from exc
        try:
            parse_skill(source)
        except InvalidInput as exc:
            raise InvalidInput(f"{path}: {exc.message}") from exc
        sources.append(source)

    async def publish(services: Services) -> list[tuple[str, int]]:
        return [((p := await services.skills.publish(s)).name, p.version) for s in sources]

    for name, version in run(publish):
        out.print(f"Published {name} version {version}.")
