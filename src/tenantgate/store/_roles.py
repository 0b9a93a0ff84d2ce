"""The three database roles and the checks that keep them honest."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RoleNames"]


@dataclass(frozen=True, slots=True)
class RoleNames:
    """owner runs migrations; app serves tenant traffic under RLS; admin bypasses RLS for platform ops."""

    owner: str
    app: str
    admin: str

    @classmethod
    def from_prefix(cls, prefix: str) -> RoleNames:
        return cls(owner=f"{prefix}_owner", app=f"{prefix}_app", admin=f"{prefix}_admin")
