"""Skills over HTTP: browse the platform catalog, install, author, enable, remove (owner/admin write).

Operators publish to the catalog with a platform key (``POST /v1/platform/skill-catalog``).
Versions and restore take a skill's name (the live skill, else the one removed last) or its
id (from ``GET /v1/skills?include_deleted=true``); versions are listed oldest first.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Caller, Operator, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._lifecycle import IncludeDeleted, RestoreIn, version_of
from tenantgate.skills import MAX_SKILL_CHARS, CatalogSkill, Skill, SkillVersion

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class SkillSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(min_length=1, max_length=MAX_SKILL_CHARS, description="Markdown with YAML front matter.")


class SkillPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


class CatalogSkillOut(BaseModel):
    name: str
    version: int
    description: str
    metadata: dict[str, Any]
    source: str
    published_at: datetime

    @classmethod
    def of(cls, c: CatalogSkill) -> CatalogSkillOut:
        return cls(name=c.name, version=c.version, description=c.description, metadata=c.metadata, source=c.source,
                   published_at=c.published_at)  # fmt: skip


class SkillOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    metadata: dict[str, Any]
    source: str
    origin: str
    catalog_version: int | None
    enabled: bool
    version: int
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, s: Skill) -> SkillOut:
        return cls(id=s.id, name=s.name, description=s.description, metadata=s.metadata, source=s.source,
                   origin=s.origin, catalog_version=s.catalog_version, enabled=s.enabled, version=s.version,
                   updated_at=s.updated_at, deleted_at=s.deleted_at)  # fmt: skip


class SkillVersionOut(BaseModel):
    version: int
    source: str
    origin: str
    catalog_version: int | None
    enabled: bool
    change: str
    changed_at: datetime
    changed_by: uuid.UUID

    @classmethod
    def of(cls, v: SkillVersion) -> SkillVersionOut:
        return cls(version=v.version, source=v.source, origin=v.origin, catalog_version=v.catalog_version,
                   enabled=v.enabled, change=v.change, changed_at=v.changed_at, changed_by=v.changed_by)  # fmt: skip


class SkillDetail(SkillOut):
    versions: list[SkillVersionOut]


@router.get("/skills/catalog", response_model=list[CatalogSkillOut], tags=["skills"])
async def skill_catalog(ctx: Caller, services: ServicesDep) -> list[CatalogSkillOut]:
    """What the platform offers to install."""
    return [CatalogSkillOut.of(c) for c in await services.skills.catalog(ctx)]


@router.post(
    "/skills/catalog/{name}/install",
    response_model=SkillOut,
    status_code=201,
    tags=["skills"],
    responses=error_responses(404, 409),
)
async def install_skill(name: str, ctx: Caller, services: ServicesDep) -> SkillOut:
    """Install a catalog skill, or move an installed one to the catalog's latest version (owner/admin)."""
    return SkillOut.of(await services.skills.install(ctx, name))


@router.get("/skills", response_model=list[SkillOut], tags=["skills"])
async def list_skills(ctx: Caller, services: ServicesDep, include_deleted: IncludeDeleted = False) -> list[SkillOut]:
    return [SkillOut.of(s) for s in await services.skills.installed(ctx, include_deleted=include_deleted)]


@router.post("/skills", response_model=SkillOut, status_code=201, tags=["skills"], responses=error_responses(409))
async def author_skill(body: SkillSource, ctx: Caller, services: ServicesDep) -> SkillOut:
    """Write a skill (or a new version of one): markdown with name and description in YAML front matter."""
    return SkillOut.of(await services.skills.author(ctx, body.source))


@router.get("/skills/{name}", response_model=SkillDetail, tags=["skills"], responses=error_responses(404))
async def get_skill(name: str, ctx: Caller, services: ServicesDep) -> SkillDetail:
    """A skill with every version."""
    skill = await services.skills.get(ctx, name)
    versions = [SkillVersionOut.of(v) for v in await services.skills.versions(ctx, skill.id)]
    return SkillDetail(**SkillOut.of(skill).model_dump(), versions=versions)


@router.patch("/skills/{name}", response_model=SkillOut, tags=["skills"], responses=error_responses(404))
async def update_skill(name: str, body: SkillPatch, ctx: Caller, services: ServicesDep) -> SkillOut:
    return SkillOut.of(await services.skills.set_enabled(ctx, name, body.enabled))


@router.delete("/skills/{name}", response_model=SkillOut, tags=["skills"], responses=error_responses(404))
async def remove_skill(name: str, ctx: Caller, services: ServicesDep) -> SkillOut:
    return SkillOut.of(await services.skills.remove(ctx, name))


@router.get(
    "/skills/{name}/versions", response_model=list[SkillVersionOut], tags=["skills"], responses=error_responses(404)
)
async def skill_versions(name: str, ctx: Caller, services: ServicesDep) -> list[SkillVersionOut]:
    """Every version of a skill (by name or id, removed skills included), oldest first."""
    return [SkillVersionOut.of(v) for v in await services.skills.history(ctx, name)]


@router.post("/skills/{name}/restore", response_model=SkillOut, tags=["skills"], responses=error_responses(404, 409))
async def restore_skill(name: str, ctx: Caller, services: ServicesDep, body: RestoreIn | None = None) -> SkillOut:
    """Bring back a version as a new version (owner/admin); default: the latest before the removal."""
    return SkillOut.of(await services.skills.restore(ctx, name, version=version_of(body)))


@router.post("/platform/skill-catalog", response_model=CatalogSkillOut, status_code=201, tags=["platform"])
async def publish_skill(body: SkillSource, op: Operator, services: ServicesDep) -> CatalogSkillOut:
    """Publish a skill to every tenant's catalog, or a new version of it (platform key)."""
    published = await services.skills.publish(body.source, actor=op.key_id, request_id=op.request_id)
    return CatalogSkillOut.of(published)
