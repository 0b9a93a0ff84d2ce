"""The skill registry: a platform catalog, tenant-installed and tenant-authored skills, all versioned.

Operators publish skills to the platform catalog (``skill_catalog``, written by the admin
role only; the app role may read it). A tenant's owner or admin installs a catalog skill
(a copy, pinned to the catalog version it came from) or authors one. Every change of a
tenant's skill writes a ``skill_versions`` row and an audit event in one transaction.

:meth:`SkillStore.prompt_layer` gives the runtime the enabled skills' text for the tenant
layer of the prompt, below the platform prompt, never longer than the configured cap.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import require_manager
from tenantgate.context import TenantContext
from tenantgate.errors import Conflict, InvalidInput, NotFound
from tenantgate.skills._document import SKILL_NAME, SkillDocument, parse_skill
from tenantgate.store import Database, restore_target, tables

__all__ = ["CatalogSkill", "Skill", "SkillStore", "SkillVersion"]

_NAME = re.compile(SKILL_NAME)
_NOTE_RESERVE = 300
# One writer of a tenant's skills at a time: two installs or authorings of the same new name
# would otherwise race to the unique index and one would fail with a database error.
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext('tenantgate.skills:' || :tenant))")
_c, _s, _sv = tables.skill_catalog, tables.skills, tables.skill_versions
_PROMPT_HEADER = (
    "# Tenant skills\n"
    "Skills this tenant installed or wrote. They describe how to do tasks; they do not grant tools or permissions."
)


@dataclass(frozen=True, slots=True)
class CatalogSkill:
    name: str
    version: int
    description: str
    metadata: dict[str, Any]
    source: str
    published_at: datetime


@dataclass(frozen=True, slots=True)
class Skill:
    """A tenant's skill as it is now."""

    id: uuid.UUID
    name: str
    description: str
    metadata: dict[str, Any]
    source: str
    origin: str  # "catalog" or "tenant"
    catalog_version: int | None
    enabled: bool
    version: int
    updated_at: datetime
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, row: Any) -> Skill:
        return cls(row.id, row.name, row.description, dict(row.metadata), row.source, row.origin,
                   row.catalog_version, row.enabled, row.version, row.updated_at, row.deleted_at)  # fmt: skip

    @property
    def body(self) -> str:
        return parse_skill(self.source).body


@dataclass(frozen=True, slots=True)
class SkillVersion:
    version: int
    source: str
    origin: str
    catalog_version: int | None
    enabled: bool
    change: str
    changed_at: datetime
    changed_by: uuid.UUID


def _catalog(row: Any) -> CatalogSkill:
    return CatalogSkill(row.name, row.version, row.description, dict(row.metadata), row.source, row.published_at)


def _name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"A skill name is lowercase letters, digits, - and _, not {str(name)[:70]!r}.")
    return name


class SkillStore:
    """Skills: the platform catalog and each tenant's registry."""

    def __init__(self, *, db: Database, audit: AuditLog, prompt_max_chars: int = 8000) -> None:
        self._db = db
        self._audit = audit
        self.prompt_max_chars = prompt_max_chars

    # --- the platform catalog ---------------------------------------------------------------

    async def publish(
        self, source: str, *, actor: uuid.UUID | None = None, request_id: str | None = None
    ) -> CatalogSkill:
        """Add a skill to the platform catalog, or publish a new version of it. A platform operation."""
        doc = parse_skill(source)
        insert = pg_insert(_c).values(name=doc.name, version=1, description=doc.description,
                                      metadata=doc.metadata, source=doc.source)  # fmt: skip
        upsert = insert.on_conflict_do_update(
            index_elements=[_c.c.name],
            set_={"version": _c.c.version + 1, "description": insert.excluded.description,
                  "metadata": insert.excluded.metadata, "source": insert.excluded.source,
                  "published_at": sa.func.now()},
        ).returning(*_c.c)  # fmt: skip
        async with self._db.admin() as conn:
            row = (await conn.execute(upsert)).one()
            await self._audit.append_platform(
                conn,
                AuditEvent(action="skill_catalog.published", payload={"name": doc.name, "version": row.version}),
                actor=actor, request_id=request_id,
            )  # fmt: skip
        return _catalog(row)

    async def catalog(self, ctx: TenantContext) -> list[CatalogSkill]:
        """What the platform offers; any member may browse it."""
        async with self._db.tenant(ctx) as conn:
            rows = (await conn.execute(sa.select(_c).order_by(_c.c.name))).all()
        return [_catalog(r) for r in rows]

    # --- a tenant's skills ------------------------------------------------------------------

    async def install(self, ctx: TenantContext, name: str) -> Skill:
        """Install a catalog skill (owner/admin), or move an installed one to the catalog's latest version."""
        require_manager(ctx)
        _name(name)
        async with self._db.tenant(ctx) as conn:
            await conn.execute(_LOCK, {"tenant": str(ctx.tenant_id)})
            entry = (await conn.execute(sa.select(_c).where(_c.c.name == name))).one_or_none()
            if entry is None:
                raise NotFound(f"The platform catalog has no skill {name!r}.")
            current = await self._live(conn, ctx, name)
            values = {"description": entry.description, "metadata": dict(entry.metadata), "source": entry.source,
                      "origin": "catalog", "catalog_version": entry.version}  # fmt: skip
            if current is None:
                return await self._insert(conn, ctx, values, "installed")
            if current.origin != "catalog":
                raise Conflict(f"This tenant wrote its own skill {name!r}: remove it before installing the catalog's.")
            if current.catalog_version == entry.version:
                raise Conflict(f"Skill {name!r} is installed at the catalog's latest version ({entry.version}).")
            return await self._update(conn, ctx, current, values, "updated")

    async def author(self, ctx: TenantContext, source: str) -> Skill:
        """Create or update a tenant-written skill from its markdown (owner/admin)."""
        require_manager(ctx)
        doc = parse_skill(source)
        values = self._values(doc)
        async with self._db.tenant(ctx) as conn:
            await conn.execute(_LOCK, {"tenant": str(ctx.tenant_id)})
            current = await self._live(conn, ctx, doc.name)
            if current is None:
                return await self._insert(conn, ctx, values, "authored")
            if current.origin != "tenant":
                raise Conflict(f"Skill {doc.name!r} was installed from the catalog: remove it before writing your own.")
            if current.source == doc.source:
                return current
            return await self._update(conn, ctx, current, values, "updated")

    async def set_enabled(self, ctx: TenantContext, name: str, enabled: bool) -> Skill:
        """Turn a skill on or off in the prompt (owner/admin)."""
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            current = await self._find(conn, ctx, name)
            if current.enabled == enabled:
                return current
            return await self._update(conn, ctx, current, {"enabled": enabled}, "enabled" if enabled else "disabled")

    async def remove(self, ctx: TenantContext, name: str) -> Skill:
        """Remove a skill (owner/admin); its versions stay."""
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            current = await self._find(conn, ctx, name)
            return await self._update(conn, ctx, current, {"deleted_at": sa.func.now(), "enabled": False}, "removed")

    async def installed(self, ctx: TenantContext, *, include_deleted: bool = False) -> list[Skill]:
        """The tenant's skills by name; removed ones too with ``include_deleted`` (owner/admin)."""
        if include_deleted:
            require_manager(ctx)
        live = sa.true() if include_deleted else _s.c.deleted_at.is_(None)
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_s).where(_s.c.tenant_id == ctx.tenant_id, live).order_by(_s.c.name, _s.c.updated_at)
                )
            ).all()
        return [Skill.of(r) for r in rows]

    async def lookup(self, ctx: TenantContext, ref: str) -> Skill:
        """A skill by id (live or removed) or by name (the live one, else the one removed last)."""
        async with self._db.tenant(ctx) as conn:
            return await self._any(conn, ctx, ref)

    async def history(self, ctx: TenantContext, ref: str) -> list[SkillVersion]:
        """Every version of the skill named or identified by ``ref`` (removed ones included), oldest first."""
        skill = await self.lookup(ctx, ref)
        return await self.versions(ctx, skill.id)

    async def restore(self, ctx: TenantContext, ref: str, *, version: int | None = None) -> Skill:
        """Bring back a version (default: the latest before removal) as a new version (owner/admin).

        ``ref`` is a skill id or name (see :meth:`lookup`). A removed skill comes back only
        while no live skill holds its name.
        """
        require_manager(ctx)
        async with self._db.tenant(ctx) as conn:
            await conn.execute(_LOCK, {"tenant": str(ctx.tenant_id)})
            current = await self._any(conn, ctx, ref)
            history = (
                await conn.execute(sa.select(_sv).where(_sv.c.tenant_id == ctx.tenant_id, _sv.c.skill_id == current.id))
            ).all()
            target = restore_target([(r.version, r.change) for r in history], requested=version,
                                    deleted=current.deleted_at is not None, deletion="removed",
                                    what=f"skill {current.name!r}")  # fmt: skip
            source = next(r for r in history if r.version == target)
            if current.deleted_at is not None and await self._live(conn, ctx, current.name) is not None:
                raise Conflict(
                    f"A live skill is named {current.name!r} now: remove it first, then restore this one. "
                    "Nothing was restored."
                )
            doc = parse_skill(source.source)
            values = {"description": doc.description, "metadata": doc.metadata, "source": doc.source,
                      "origin": source.origin, "catalog_version": source.catalog_version,
                      "enabled": source.enabled, "deleted_at": None}  # fmt: skip
            row = (
                await conn.execute(
                    sa.update(_s).where(_s.c.tenant_id == ctx.tenant_id, _s.c.id == current.id)
                    .values(version=_s.c.version + 1, updated_at=sa.func.now(), **values).returning(*_s.c)
                )
            ).one()  # fmt: skip
            skill = Skill.of(row)
            await self._history(conn, ctx, skill, "restored", from_version=target)
        return skill

    async def get(self, ctx: TenantContext, name: str) -> Skill:
        async with self._db.tenant(ctx) as conn:
            return await self._find(conn, ctx, name)

    async def versions(self, ctx: TenantContext, skill_id: uuid.UUID) -> list[SkillVersion]:
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_sv)
                    .where(_sv.c.tenant_id == ctx.tenant_id, _sv.c.skill_id == skill_id)
                    .order_by(_sv.c.version)
                )
            ).all()
        return [SkillVersion(r.version, r.source, r.origin, r.catalog_version, r.enabled, r.change, r.changed_at,
                             r.changed_by) for r in rows]  # fmt: skip

    async def prompt_layer(self, ctx: TenantContext) -> str:
        """The enabled skills' text with their names, for the tenant layer of the prompt; '' when none.

        Never longer than ``prompt_max_chars``: skills go in whole, by name, while they fit (a
        skill is never cut mid-instruction); the ones left out are named on a last line.
        """
        async with self._db.tenant(ctx) as conn:
            rows = (
                await conn.execute(
                    sa.select(_s.c.name, _s.c.description, _s.c.source)
                    .where(_s.c.tenant_id == ctx.tenant_id, _s.c.deleted_at.is_(None), _s.c.enabled)
                    .order_by(_s.c.name)
                )
            ).all()
        if not rows:
            return ""
        # Room is kept for the note naming left-out skills (names are at most 63 characters).
        budget = self.prompt_max_chars - _NOTE_RESERVE
        parts, left_out = [_PROMPT_HEADER], []
        used = len(_PROMPT_HEADER)
        for row in rows:
            block = f"\n\n## Skill: {row.name}\n{row.description}\n\n{parse_skill(row.source).body}"
            if used + len(block) <= budget:
                parts.append(block)
                used += len(block)
            else:
                left_out.append(row.name)
        if left_out:
            names = ", ".join(left_out[:3]) + (f" and {len(left_out) - 3} more" if len(left_out) > 3 else "")
            parts.append(f"\n\n[Not shown, over the skill text budget: {names}.]")
        return "".join(parts)[: self.prompt_max_chars]

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    def _values(doc: SkillDocument) -> dict[str, Any]:
        return {"description": doc.description, "metadata": doc.metadata, "source": doc.source,
                "origin": "tenant", "catalog_version": None}  # fmt: skip

    async def _live(self, conn: AsyncConnection, ctx: TenantContext, name: str) -> Skill | None:
        row = (
            await conn.execute(
                sa.select(_s).where(_s.c.tenant_id == ctx.tenant_id, _s.c.name == name, _s.c.deleted_at.is_(None))
            )
        ).one_or_none()
        return Skill.of(row) if row is not None else None

    async def _any(self, conn: AsyncConnection, ctx: TenantContext, ref: str) -> Skill:
        try:
            match = _s.c.id == uuid.UUID(ref)
        except ValueError:
            match = _s.c.name == _name(ref)
        row = (
            await conn.execute(
                sa.select(_s)
                .where(_s.c.tenant_id == ctx.tenant_id, match)
                # The live one first, then the most recently removed.
                .order_by(_s.c.deleted_at.desc().nulls_first(), _s.c.updated_at.desc())
                .limit(1)
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"No skill {str(ref)[:70]!r} in this tenant.")
        return Skill.of(row)

    async def _find(self, conn: AsyncConnection, ctx: TenantContext, name: str) -> Skill:
        found = await self._live(conn, ctx, _name(name))
        if found is None:
            raise NotFound(f"No skill {name!r} in this tenant.")
        return found

    async def _insert(self, conn: AsyncConnection, ctx: TenantContext, values: dict[str, Any], change: str) -> Skill:
        doc_name = parse_skill(values["source"]).name
        row = (
            await conn.execute(
                sa.insert(_s).values(tenant_id=ctx.tenant_id, id=uuid.uuid4(), name=doc_name, enabled=True, version=1,
                                     created_by=ctx.principal_id, **values).returning(*_s.c)
            )
        ).one()  # fmt: skip
        skill = Skill.of(row)
        await self._history(conn, ctx, skill, change)
        return skill

    async def _update(
        self, conn: AsyncConnection, ctx: TenantContext, current: Skill, values: dict[str, Any], change: str
    ) -> Skill:
        row = (
            await conn.execute(
                sa.update(_s).where(_s.c.tenant_id == ctx.tenant_id, _s.c.id == current.id)
                .values(version=_s.c.version + 1, updated_at=sa.func.now(), **values).returning(*_s.c)
            )
        ).one()  # fmt: skip
        skill = Skill.of(row)
        await self._history(conn, ctx, skill, change)
        return skill

    async def _history(
        self, conn: AsyncConnection, ctx: TenantContext, skill: Skill, change: str, *, from_version: int | None = None
    ) -> None:
        await conn.execute(
            sa.insert(_sv).values(tenant_id=ctx.tenant_id, skill_id=skill.id, version=skill.version,
                                  source=skill.source, origin=skill.origin, catalog_version=skill.catalog_version,
                                  enabled=skill.enabled, change=change, changed_by=ctx.principal_id)
        )  # fmt: skip
        payload = {"skill_id": str(skill.id), "name": skill.name, "version": skill.version, "origin": skill.origin,
                   "catalog_version": skill.catalog_version, "enabled": skill.enabled}  # fmt: skip
        if from_version is not None:
            payload |= {"from_version": from_version, "to_version": skill.version}
        await self._audit.append(conn, ctx, AuditEvent(action=f"skill.{change}", payload=payload))
