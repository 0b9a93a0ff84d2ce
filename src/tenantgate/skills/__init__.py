"""Skills: markdown with YAML front matter, a platform catalog and each tenant's versioned registry."""

from tenantgate.skills._document import MAX_SKILL_CHARS, SKILL_NAME, SkillDocument, parse_skill
from tenantgate.skills._store import CatalogSkill, Skill, SkillStore, SkillVersion

__all__ = [
    "MAX_SKILL_CHARS",
    "SKILL_NAME",
    "CatalogSkill",
    "Skill",
    "SkillDocument",
    "SkillStore",
    "SkillVersion",
    "parse_skill",
]
