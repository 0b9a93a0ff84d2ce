"""Request and response bodies. Requests forbid unknown fields: a stray ``tenant_id`` is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, model_validator

from tenantgate.auth import IssuedKey, KeyInfo, Principal
from tenantgate.context import PrincipalKind, Role
from tenantgate.tenants import Tenant, TenantStatus


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WhoAmI(BaseModel):
    tenant_id: uuid.UUID
    principal_id: uuid.UUID
    kind: PrincipalKind
    roles: list[Role]


class KeyCreate(_Request):
    principal_id: uuid.UUID | None = Field(None, description="Defaults to the caller's own principal.")
    roles: list[Role] | None = Field(None, min_length=1, description="Defaults to all of the principal's roles.")
    name: str = Field("", max_length=200)
    expires_at: AwareDatetime | None = None
    expires_in_seconds: int | None = Field(None, ge=60, le=10 * 365 * 86400)

    @model_validator(mode="after")
    def _one_expiry(self) -> KeyCreate:
        if self.expires_at is not None and self.expires_in_seconds is not None:
            raise ValueError("give expires_at or expires_in_seconds, not both")
        return self

    def expiry(self) -> datetime | None:
        if self.expires_in_seconds is not None:
            return datetime.now(UTC) + timedelta(seconds=self.expires_in_seconds)
        return self.expires_at


class KeyRotate(_Request):
    overlap_seconds: int = Field(3600, ge=0, le=30 * 86400, description="How long the old key keeps working.")


class KeyOut(BaseModel):
    id: uuid.UUID
    principal_id: uuid.UUID
    name: str
    prefix: str
    roles: list[Role]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rotated_from: uuid.UUID | None
    active: bool

    @classmethod
    def of(cls, info: KeyInfo) -> KeyOut:
        return cls(
            id=info.id, principal_id=info.principal_id, name=info.name, prefix=info.prefix,
            roles=list(info.roles), created_at=info.created_at, expires_at=info.expires_at,
            revoked_at=info.revoked_at, last_used_at=info.last_used_at, rotated_from=info.rotated_from,
            active=info.active(datetime.now(UTC)),
        )  # fmt: skip


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. Shown only in this response; store it now.")

    @classmethod
    def issued(cls, issued: IssuedKey) -> KeyCreated:
        return cls(**KeyOut.of(issued.info).model_dump(), key=issued.key)


class PrincipalCreate(_Request):
    name: str = Field(min_length=1, max_length=200)
    kind: PrincipalKind = PrincipalKind.SERVICE_ACCOUNT
    roles: list[Role] = Field(min_length=1)
    external_id: str | None = Field(None, min_length=1, max_length=500)


class PrincipalOut(BaseModel):
    id: uuid.UUID
    kind: PrincipalKind
    name: str
    external_id: str | None
    roles: list[Role]
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, p: Principal) -> PrincipalOut:
        return cls(id=p.id, kind=p.kind, name=p.name, external_id=p.external_id, roles=list(p.roles),
                   created_at=p.created_at, disabled_at=p.disabled_at)  # fmt: skip


class TenantCreate(_Request):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")
    display_name: str | None = Field(None, min_length=1, max_length=200)


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    display_name: str
    status: TenantStatus
    created_at: datetime

    @classmethod
    def of(cls, t: Tenant) -> TenantOut:
        return cls(id=t.id, name=t.name, display_name=t.display_name, status=t.status, created_at=t.created_at)


class PasswordSet(_Request):
    """A user's admin-console password (12 to 1024 characters); stored only as an scrypt hash."""

    password: SecretStr = Field(min_length=12, max_length=1024)
