"""A skill's source: markdown with YAML front matter, parsed safely and validated.

::

    ---
    name: weekly-report
    description: How to write the weekly status report.
    metadata: {audience: team}
    ---
    # Weekly report
    ...

The front matter is read with ``yaml.safe_load`` after refusing aliases (a few hundred
bytes of nested aliases expand to gigabytes once serialized), then validated with
pydantic; every problem is reported with what to change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from tenantgate.errors import InvalidInput

__all__ = ["MAX_SKILL_CHARS", "SKILL_NAME", "SkillDocument", "parse_skill"]

MAX_SKILL_CHARS = 32_000
_MAX_METADATA_CHARS = 4000
SKILL_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
_FENCE = "---"


class _FrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SKILL_NAME, description="lowercase letters, digits, - and _")
    description: str = Field(min_length=1, max_length=500)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkillDocument:
    """A parsed, valid skill: its front matter fields, its markdown body and the exact source."""

    name: str
    description: str
    metadata: dict[str, Any]
    body: str
    source: str


def _split(source: str) -> tuple[str, str]:
    lines = source.split("\n")
    if not lines or lines[0].rstrip() != _FENCE:
        raise InvalidInput("A skill starts with YAML front matter: a first line '---', the fields, then '---'.")
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() == _FENCE:
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :])
    raise InvalidInput("The skill's front matter is not closed: add a line '---' after its fields.")


def _load(front: str) -> Any:
    try:
        for token in yaml.scan(front, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AliasToken | yaml.AnchorToken | yaml.TagToken):
                raise InvalidInput("The skill's front matter may not use YAML anchors, aliases or tags.")
        return yaml.safe_load(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise InvalidInput(f"The skill's front matter is not valid YAML{where}: {problem}.") from exc


def parse_skill(source: str) -> SkillDocument:
    """Parse and validate a skill's markdown; raise :class:`InvalidInput` naming what is wrong."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidInput("The skill is empty: send markdown with YAML front matter.")
    if len(source) > MAX_SKILL_CHARS:
        raise InvalidInput(f"The skill has {len(source)} characters; at most {MAX_SKILL_CHARS} are allowed.")
    if "\x00" in source:
        raise InvalidInput("The skill contains a NUL character.")
    source = source.replace("\r\n", "\n")
    front, body = _split(source)
    data = _load(front)
    if not isinstance(data, dict):
        raise InvalidInput("The skill's front matter must be a mapping with name and description.")
    try:
        fields = _FrontMatter.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'front matter'}: {e['msg']}" for e in exc.errors()]
        raise InvalidInput(
            "The skill's front matter is not valid: " + "; ".join(problems[:10]),
            errors=[{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)],
        ) from exc
    if len(json.dumps(fields.metadata)) > _MAX_METADATA_CHARS:
        raise InvalidInput(f"The skill's metadata is larger than {_MAX_METADATA_CHARS} characters of JSON.")
    if not body.strip():
        raise InvalidInput("The skill has no body: write its instructions below the front matter.")
    return SkillDocument(fields.name, fields.description, dict(fields.metadata), body.strip("\n"), source)
