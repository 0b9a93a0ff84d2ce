"""Skill tools: list the tenant's skills and read one (package ``skills``, both modes).

Writing skills is not a tool: owners and admins author and install them through the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tenantgate.skills import SKILL_NAME, SkillStore
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool

__all__ = ["SkillGetArgs", "SkillsListArgs", "skill_tools"]


class SkillsListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SkillGetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SKILL_NAME)


def skill_tools(store: SkillStore) -> tuple[list[Tool], list[ToolPackage]]:
    """The skill tools over ``store``, and the ``skills`` package."""

    @tool(
        "skills_list@v1",
        description="List the tenant's skills: name, description, whether enabled.",
        effect=ToolEffect.READ,
        capabilities={Capability.MEMORY},
    )
    async def skills_list(call: ToolCall, args: SkillsListArgs) -> dict[str, Any]:
        return {"skills": [{"name": s.name, "description": s.description, "enabled": s.enabled, "origin": s.origin,
                            "version": s.version} for s in await store.installed(call.ctx)]}  # fmt: skip

    @tool(
        "skill_get@v1",
        description="Read one skill's instructions.",
        effect=ToolEffect.READ,
        capabilities={Capability.MEMORY},
    )
    async def skill_get(call: ToolCall, args: SkillGetArgs) -> dict[str, Any]:
        skill = await store.get(call.ctx, args.name)
        return {"name": skill.name, "description": skill.description, "metadata": skill.metadata,
                "body": skill.body, "enabled": skill.enabled, "version": skill.version}  # fmt: skip

    tools = [skills_list, skill_get]
    return tools, [ToolPackage("skills", "The tenant's skills: list and read.", tuple(t.name for t in tools))]
