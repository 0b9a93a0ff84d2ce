"""Private tenant artifacts: content stored by reference, read back only by its tenant or a signed URL."""

from tenantgate.artifacts._s3 import S3Storage
from tenantgate.artifacts._signing import ArtifactUrlInvalid, SignedUrl, UrlSigner
from tenantgate.artifacts._sniff import OCTET_STREAM, sniff
from tenantgate.artifacts._storage import (
    ArtifactStorage,
    ArtifactStorageUnavailable,
    LocalStorage,
    new_storage_key,
    tenant_prefix,
)
from tenantgate.artifacts._store import (
    RETENTION_CLASSES,
    Artifact,
    ArtifactLimits,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactTooLarge,
)
from tenantgate.artifacts._tools import ToolArtifacts

__all__ = [
    "OCTET_STREAM",
    "RETENTION_CLASSES",
    "Artifact",
    "ArtifactLimits",
    "ArtifactNotFound",
    "ArtifactStorage",
    "ArtifactStorageUnavailable",
    "ArtifactStore",
    "ArtifactTooLarge",
    "ArtifactUrlInvalid",
    "LocalStorage",
    "S3Storage",
    "SignedUrl",
    "ToolArtifacts",
    "UrlSigner",
    "new_storage_key",
    "sniff",
    "tenant_prefix",
]
