"""A tenant's credentials: secrets go in and never come out (owner/admin to change; any member lists metadata)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.api._lifecycle import IncludeDeleted, RestoreIn, version_of
from tenantgate.vault import CredentialInfo, CredentialKind, CredentialVersion

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

_SECRET_DOC = 'Field name -> value, e.g. {"api_key": "..."}. Write-only: never returned or logged.'  # noqa: S105


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    kind: CredentialKind
    provider: str | None = Field(None, min_length=1, max_length=100)
    secret: dict[str, str] = Field(description=_SECRET_DOC, repr=False)
    metadata: dict[str, Any] = Field(default_factory=dict)


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: dict[str, str] = Field(description=_SECRET_DOC, repr=False)


class CredentialPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(None, min_length=1, max_length=100)
    metadata: dict[str, Any] | None = None


class CredentialOut(BaseModel):
    """A credential's metadata. There is no secret field, by construction."""

    id: uuid.UUID
    name: str
    kind: CredentialKind
    provider: str | None
    fields: list[str] = Field(description="Names of the secret's fields (the values are never shown).")
    metadata: dict[str, Any]
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    version: int = 1
    deleted_at: datetime | None = None

    @classmethod
    def of(cls, c: CredentialInfo) -> CredentialOut:
        return cls(
            id=c.id, name=c.name, kind=c.kind, provider=c.provider, fields=list(c.fields), metadata=dict(c.metadata),
            created_at=c.created_at, created_by=c.created_by, updated_at=c.updated_at, updated_by=c.updated_by,
            version=c.version, deleted_at=c.deleted_at,
        )  # fmt: skip


class CredentialVersionOut(BaseModel):
    """A version of a credential's metadata; versions never hold the secret."""

    version: int
    name: str
    kind: CredentialKind
    provider: str | None
    metadata: dict[str, Any]
    fields: list[str]
    change: str
    changed_at: datetime
    changed_by: uuid.UUID

    @classmethod
    def of(cls, v: CredentialVersion) -> CredentialVersionOut:
        return cls(version=v.version, name=v.name, kind=v.kind, provider=v.provider, metadata=dict(v.metadata),
                   fields=list(v.fields), change=v.change, changed_at=v.changed_at,
                   changed_by=v.changed_by)  # fmt: skip


@router.get("/credentials", response_model=list[CredentialOut], tags=["credentials"])
async def list_credentials(
    ctx: Caller, services: ServicesDep, include_deleted: IncludeDeleted = False
) -> list[CredentialOut]:
    """The tenant's credentials, metadata only."""
    return [CredentialOut.of(c) for c in await services.credentials.list(ctx, include_deleted=include_deleted)]


@router.post(
    "/credentials", response_model=CredentialOut, status_code=201, tags=["credentials"], responses=error_responses(409)
)
async def create_credential(body: CredentialIn, ctx: Caller, services: ServicesDep) -> CredentialOut:
    """Store a credential, sealed under the tenant's data key (owner/admin)."""
    info = await services.credentials.create(
        ctx, name=body.name, kind=body.kind, secret=body.secret, provider=body.provider, metadata=body.metadata
    )
    return CredentialOut.of(info)


@router.get(
    "/credentials/{credential_id}", response_model=CredentialOut, tags=["credentials"], responses=error_responses(404)
)
async def get_credential(credential_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> CredentialOut:
    return CredentialOut.of(await services.credentials.get(ctx, credential_id))


@router.put(
    "/credentials/{credential_id}/secret",
    response_model=CredentialOut,
    tags=["credentials"],
    responses=error_responses(404),
)
async def replace_secret(credential_id: uuid.UUID, body: SecretIn, ctx: Caller, services: ServicesDep) -> CredentialOut:
    """Replace the whole secret (owner/admin)."""
    return CredentialOut.of(await services.credentials.replace_secret(ctx, credential_id, body.secret))


@router.patch(
    "/credentials/{credential_id}", response_model=CredentialOut, tags=["credentials"], responses=error_responses(404)
)
async def update_credential(
    credential_id: uuid.UUID, body: CredentialPatch, ctx: Caller, services: ServicesDep
) -> CredentialOut:
    """Change the metadata or the provider label (owner/admin); the secret is untouched."""
    info = await services.credentials.update_metadata(
        ctx, credential_id, metadata=body.metadata, provider=body.provider
    )
    return CredentialOut.of(info)


@router.delete(
    "/credentials/{credential_id}", response_model=CredentialOut, tags=["credentials"], responses=error_responses(404)
)
async def delete_credential(credential_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> CredentialOut:
    """Delete a credential softly (owner/admin): no tool can use it; restore brings it back with its secret."""
    return CredentialOut.of(await services.credentials.delete(ctx, credential_id))


@router.get(
    "/credentials/{credential_id}/versions",
    response_model=list[CredentialVersionOut],
    tags=["credentials"],
    responses=error_responses(404),
)
async def credential_versions(
    credential_id: uuid.UUID, ctx: Caller, services: ServicesDep
) -> list[CredentialVersionOut]:
    """Every version of the credential's metadata (never its secret), deleted credentials included, oldest first."""
    return [CredentialVersionOut.of(v) for v in await services.credentials.versions(ctx, credential_id)]


@router.post(
    "/credentials/{credential_id}/restore",
    response_model=CredentialOut,
    tags=["credentials"],
    responses=error_responses(404, 409),
)
async def restore_credential(
    credential_id: uuid.UUID, ctx: Caller, services: ServicesDep, body: RestoreIn | None = None
) -> CredentialOut:
    """Bring back a version's metadata as a new version (owner/admin), with the secret sealed now."""
    return CredentialOut.of(await services.credentials.restore(ctx, credential_id, version=version_of(body)))
