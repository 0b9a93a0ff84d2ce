"""What every restore and every deleted-inclusive list takes over HTTP, shared by the kinds' routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IncludeDeleted", "RestoreIn", "version_of"]

IncludeDeleted = Annotated[bool, Query(description="Also list deleted items, to find one to restore (owner/admin).")]


class RestoreIn(BaseModel):
    """The body of a restore (optional): which version to bring back."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,  # versions are integer columns
        description="The version to restore; default: the latest version before the deletion.",
    )


def version_of(body: RestoreIn | None) -> int | None:
    return body.version if body is not None else None
