"""Who is acting, for which tenant: the immutable context passed down every call.

A :class:`TenantContext` is created by the auth layer from a verified credential
(``tenantgate.auth``) and passed explicitly as the first argument. Nothing reads the
tenant from a global; a contextvar carries ids for log enrichment only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum

__all__ = ["DeploymentMode", "PrincipalKind", "Role", "TenantContext"]


class DeploymentMode(StrEnum):
    """Fixed at start-up. ``saas`` is API-only; ``self_hosted`` adds shell and filesystem tools."""

    SAAS = "saas"
    SELF_HOSTED = "self_hosted"


class PrincipalKind(StrEnum):
    USER = "user"
    SERVICE_ACCOUNT = "service_account"
    AI_EXECUTION = "ai_execution"
    SYSTEM = "system"


class Role(StrEnum):
    """Tenant roles. Owners and admins manage keys and policy; members use safe actions."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"

    def implied(self) -> frozenset[Role]:
        """This role and every weaker one: an owner may act as admin or member, an admin as member."""
        order = (Role.OWNER, Role.ADMIN, Role.MEMBER)
        return frozenset(order[order.index(self) :])

    @staticmethod
    def closure(roles: frozenset[Role]) -> frozenset[Role]:
        """Every role that holding ``roles`` lets one grant or use."""
        return frozenset(r for held in roles for r in held.implied())


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantContext:
    """The verified identity of one request (or one agent run) inside one tenant."""

    tenant_id: uuid.UUID
    principal_id: uuid.UUID
    kind: PrincipalKind
    roles: frozenset[Role]
    mode: DeploymentMode
    request_id: str
    # For an AI execution context: the principal that started the run. It bounds
    # everything this context may do.
    acting_for: uuid.UUID | None = None
    acting_for_kind: PrincipalKind | None = None
    credential_id: uuid.UUID | None = field(default=None, compare=False)
    # Every role the held roles imply (an owner acts as admin and member): computed once.
    held: frozenset[Role] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "held", Role.closure(self.roles))
        if self.kind is PrincipalKind.AI_EXECUTION and (self.acting_for is None or self.acting_for_kind is None):
            raise ValueError("an AI execution context must name the principal that started it")
        if self.kind is not PrincipalKind.AI_EXECUTION and (
            self.acting_for is not None or self.acting_for_kind is not None
        ):
            raise ValueError("only AI execution contexts act for another principal")

    @property
    def root_principal(self) -> uuid.UUID:
        """The principal ultimately responsible: the caller, or the one an AI execution acts for."""
        return self.acting_for if self.acting_for is not None else self.principal_id

    def has_any_role(self, *roles: Role) -> bool:
        return not self.held.isdisjoint(roles)

    def for_ai_execution(self, execution_id: uuid.UUID, *, roles: frozenset[Role] | None = None) -> TenantContext:
        """Derive the context an agent run acts under.

        It names this principal as the one it acts for and never holds more than it:
        requested roles are cut to those this context holds or implies, and an AI execution
        context cannot derive another one (the chain would hide who started it).
        """
        if self.kind is PrincipalKind.AI_EXECUTION:
            raise ValueError("an AI execution context cannot start another AI execution")
        granted = self.roles if roles is None else roles & self.held
        return replace(
            self,
            principal_id=execution_id,
            kind=PrincipalKind.AI_EXECUTION,
            roles=granted,
            acting_for=self.principal_id,
            acting_for_kind=self.kind,
        )
