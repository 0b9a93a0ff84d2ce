"""Signed artifact URLs: HMAC over tenant, artifact, expiry and URL generation, verified by tenantgate itself.

The generation is the artifact's ``url_generation`` when the URL was minted; revoking an
artifact's URLs bumps it, so every URL minted before stops verifying while new ones work.

The key is derived from the server pepper (or given as ``TENANTGATE_ARTIFACT_URL_KEY``), so
every API process of an installation verifies the same URLs. A refusal never says why: an
expired, altered and foreign URL all look alike to the holder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

from tenantgate.errors import PermissionDenied

__all__ = ["ArtifactUrlInvalid", "SignedUrl", "UrlSigner"]

_CONTEXT = b"tenantgate artifact url v2"


class ArtifactUrlInvalid(PermissionDenied):
    """A signed artifact URL that is expired, altered or not for this artifact."""

    code = "artifact_url_invalid"


@dataclass(frozen=True, slots=True)
class SignedUrl:
    """The path of a signed URL (relative to the API's base URL) and when it stops working."""

    path: str
    expires_at: int  # unix seconds


class UrlSigner:
    """Mints and verifies signed URLs with one key."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _CONTEXT, hashlib.sha256).digest()

    def _sign(self, tenant_id: uuid.UUID, artifact_id: uuid.UUID, expires: int, generation: int) -> str:
        message = f"{tenant_id}:{artifact_id}:{expires}:{generation}".encode()
        mac = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def mint(
        self,
        tenant_id: uuid.UUID,
        artifact_id: uuid.UUID,
        ttl_s: int,
        *,
        generation: int = 0,
        now: float | None = None,
    ) -> SignedUrl:
        expires = int(now if now is not None else time.time()) + ttl_s
        sig = self._sign(tenant_id, artifact_id, expires, generation)
        query = f"expires={expires}&gen={generation}&sig={sig}"
        return SignedUrl(f"/v1/artifact-urls/{tenant_id}/{artifact_id}?{query}", expires)

    def verify(
        self,
        tenant_id: uuid.UUID,
        artifact_id: uuid.UUID,
        expires: int,
        sig: str,
        *,
        generation: int = 0,
        now: float | None = None,
    ) -> None:
        """Raise :class:`ArtifactUrlInvalid` unless ``sig`` is ours for these values and not expired.

        Whether ``generation`` is still the artifact's current one is the caller's check (it needs the row).
        """
        expected = self._sign(tenant_id, artifact_id, expires, generation)
        valid = hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "replace"))
        if not valid or expires <= (now if now is not None else time.time()):
            raise ArtifactUrlInvalid("This artifact link is not valid.")
