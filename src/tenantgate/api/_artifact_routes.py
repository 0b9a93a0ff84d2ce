"""Private artifacts over HTTP: upload, read (streamed), delete, and signed URLs that need no API key.

Nothing is public. ``GET /v1/artifacts/{id}`` serves only the owning tenant's callers;
``POST /v1/artifacts/{id}/url`` mints a short-lived URL bound to tenant, artifact and expiry:
on the local backend one that ``GET /v1/artifact-urls/...`` verifies before anything is looked
up, on S3 a presigned GET. ``POST /v1/artifacts/{id}/revoke-urls`` stops every URL minted so
far. Content is always served as a download (with ``nosniff`` and a sandboxing CSP here), so a
stored HTML page can never run as a page of this origin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses
from tenantgate.artifacts import Artifact, ArtifactTooLarge, ArtifactUrlInvalid
from tenantgate.auth import system_context
from tenantgate.tenants import TenantStatus

router = APIRouter(tags=["artifacts"], responses=ERROR_RESPONSES)

_RETENTION = Annotated[str, Query(pattern="^(short|standard|long)$", description="How long the artifact is kept.")]
_KIND = Annotated[str, Query(pattern="^[a-z][a-z0-9_]{0,39}$", description="What the content is.")]


_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
# The content, always as a download; its Content-Type is the one sniffed at upload, so any type.
_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"*/*": _BINARY}, "description": "The artifact's bytes (Content-Disposition: attachment)"}
}
# The body is read as raw bytes (not parsed by FastAPI), so the document says so itself.
_UPLOAD = {"requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}}


class ArtifactOut(BaseModel):
    id: uuid.UUID
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    created_by: uuid.UUID
    run_id: uuid.UUID | None
    retention_class: str
    created_at: datetime

    @classmethod
    def of(cls, a: Artifact) -> ArtifactOut:
        return cls(id=a.id, kind=a.kind, content_type=a.content_type, size_bytes=a.size_bytes, sha256=a.sha256,
                   created_by=a.created_by, run_id=a.run_id, retention_class=a.retention_class,
                   created_at=a.created_at)  # fmt: skip


class SignedUrlIn(BaseModel):
    ttl_s: int | None = None


class SignedUrlOut(BaseModel):
    url: str  # a path on this API (local backend) or an absolute presigned URL (S3)
    expires_at: int


class RevokedUrlsOut(BaseModel):
    artifact_id: uuid.UUID
    url_generation: int  # URLs minted from now on carry this generation; older ones are refused


@router.post(
    "/v1/artifacts",
    response_model=ArtifactOut,
    status_code=201,
    responses=error_responses(413),
    openapi_extra=_UPLOAD,
)
async def upload_artifact(
    request: Request,
    ctx: Caller,
    services: ServicesDep,
    kind: _KIND = "upload",
    retention_class: _RETENTION = "standard",
) -> ArtifactOut:
    """Store the request body as an artifact. Its content type is sniffed; the declared one is ignored."""
    cap = services.artifacts.limits.max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise ArtifactTooLarge(f"The upload is {declared} bytes; artifacts are at most {cap} bytes.", limit=cap)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:  # stop reading at the cap, whatever Content-Length claimed
            raise ArtifactTooLarge(f"The upload is over {cap} bytes, the most an artifact may hold.", limit=cap)
    artifact = await services.artifacts.create(ctx, bytes(body), kind=kind, retention_class=retention_class)
    return ArtifactOut.of(artifact)


@router.get("/v1/artifacts/{artifact_id}/meta", response_model=ArtifactOut, responses=error_responses(404))
async def artifact_metadata(artifact_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> ArtifactOut:
    """What an artifact is, without its content."""
    return ArtifactOut.of(await services.artifacts.get(ctx, artifact_id))


@router.get(
    "/v1/artifacts/{artifact_id}",
    response_class=StreamingResponse,
    responses={**_CONTENT, **error_responses(404)},
)
async def read_artifact(artifact_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> StreamingResponse:
    """The artifact's content, streamed, to a caller of its tenant."""
    artifact, chunks = await services.artifacts.open(ctx, artifact_id)
    return _stream(artifact, chunks)


@router.post(
    "/v1/artifacts/{artifact_id}/url", response_model=SignedUrlOut, status_code=201, responses=error_responses(404)
)
async def mint_artifact_url(
    artifact_id: uuid.UUID, ctx: Caller, services: ServicesDep, body: SignedUrlIn | None = None
) -> SignedUrlOut:
    """A URL that serves this artifact without an API key until it expires (default 5 minutes)."""
    url = await services.artifacts.mint_url(ctx, artifact_id, ttl_s=body.ttl_s if body else None)
    return SignedUrlOut(url=url.path, expires_at=url.expires_at)


@router.post("/v1/artifacts/{artifact_id}/revoke-urls", response_model=RevokedUrlsOut, responses=error_responses(404))
async def revoke_artifact_urls(artifact_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> RevokedUrlsOut:
    """Make every URL minted so far for this artifact stop working; URLs minted afterwards work."""
    generation = await services.artifacts.revoke_urls(ctx, artifact_id)
    return RevokedUrlsOut(artifact_id=artifact_id, url_generation=generation)


@router.delete("/v1/artifacts/{artifact_id}", response_model=ArtifactOut, responses=error_responses(404))
async def delete_artifact(artifact_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> ArtifactOut:
    """Delete the artifact and its stored bytes; its URLs stop working."""
    return ArtifactOut.of(await services.artifacts.delete(ctx, artifact_id))


@router.get(
    "/v1/artifact-urls/{tenant_id}/{artifact_id}",
    response_class=StreamingResponse,
    responses={**_CONTENT, **error_responses(403, 404)},
)
async def read_signed_artifact(
    request: Request,
    tenant_id: uuid.UUID,
    artifact_id: uuid.UUID,
    services: ServicesDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    sig: Annotated[str, Query(min_length=1, max_length=100)],
    gen: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> StreamingResponse:
    """Serve an artifact to the holder of a live signed URL; the signature is checked before any lookup."""
    services.artifacts.verify_url(tenant_id, artifact_id, expires, sig, generation=gen)
    if (await services.tenants.get(tenant_id)).status is not TenantStatus.ACTIVE:
        raise ArtifactUrlInvalid("This artifact link is not valid.")  # a suspended tenant's links stop with its keys
    ctx = system_context(tenant_id, mode=services.settings.mode, request_id=request.state.request_id)
    artifact, chunks = await services.artifacts.open(ctx, artifact_id, via="url", url_generation=gen)
    return _stream(artifact, chunks)


def _stream(artifact: Artifact, chunks: Iterator[bytes]) -> StreamingResponse:
    headers = {
        "Content-Length": str(artifact.size_bytes),
        "Content-Disposition": f'attachment; filename="{artifact.id}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store",
        "ETag": f'"{artifact.sha256}"',
    }
    return StreamingResponse(chunks, media_type=artifact.content_type, headers=headers)
