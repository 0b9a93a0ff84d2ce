"""S3-compatible object storage for artifacts (AWS S3, MinIO; ``pip install 'tenantgate[s3]'``).

Objects live under ``<prefix><tenant id>/<random hex>``, private (no ACLs are set: the bucket's
own, which should block public access, applies). Server-side encryption is requested on every
write, ``AES256`` (S3-managed keys) or ``aws:kms`` with a given key, so no object depends on the
bucket's default. Signed URLs are SigV4 presigned GETs that force a download with the stored
content type; S3 cannot recall one, so revoking moves the object to a new key.

boto3 is blocking: the artifact service calls these methods through ``asyncio.to_thread``.
Any fault of S3 (unreachable, refused, throttled) raises :class:`ArtifactStorageUnavailable`:
the request is refused, never answered with a guess.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from tenantgate.artifacts._storage import ArtifactStorageUnavailable, check_storage_key, check_tenant_prefix
from tenantgate.errors import ConfigurationError

__all__ = ["S3Storage"]

_CHUNK = 64 * 1024
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
SseMode = Literal["AES256", "aws:kms"]


class S3Storage:
    """Artifacts in one S3 bucket under a key prefix, encrypted at rest by S3."""

    presigns = True

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        region: str | None = None,
        endpoint_url: str | None = None,
        sse: SseMode = "AES256",
        kms_key_id: str | None = None,
        timeout_s: float = 10.0,
        client: Any = None,
    ) -> None:
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError(
                "TENANTGATE_ARTIFACT_BACKEND=s3 needs boto3: pip install 'tenantgate[s3]'."
            ) from exc
        if not bucket:
            raise ConfigurationError("TENANTGATE_ARTIFACT_S3_BUCKET is required with the s3 artifact backend.")
        if sse == "aws:kms" and not kms_key_id:
            raise ConfigurationError("TENANTGATE_ARTIFACT_S3_SSE=aws:kms needs TENANTGATE_ARTIFACT_S3_KMS_KEY_ID.")
        config = botocore.config.Config(
            signature_version="s3v4",  # presigned URLs are SigV4: bound to region, expiry and every parameter
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if endpoint_url else "auto"},  # MinIO and emulators serve paths
        )
        try:
            self._client: Any = client or boto3.client(
                "s3", region_name=region, endpoint_url=endpoint_url, config=config
            )
        except ValueError as exc:  # botocore's answer to a malformed endpoint or region
            raise ConfigurationError(
                f"The S3 client for artifacts cannot be made ({exc}): check TENANTGATE_ARTIFACT_S3_ENDPOINT_URL "
                "and TENANTGATE_ARTIFACT_S3_REGION."
            ) from exc
        self.bucket, self._prefix = bucket, prefix
        self._sse: dict[str, str] = {"ServerSideEncryption": sse}
        if sse == "aws:kms":
            assert kms_key_id is not None
            self._sse["SSEKMSKeyId"] = kms_key_id
        self._client_error: type[Exception] = botocore.exceptions.ClientError
        self._faults: tuple[type[Exception], ...] = (botocore.exceptions.BotoCoreError, self._client_error)

    def object_key(self, key: str) -> str:
        """The S3 object key of a storage key."""
        return self._prefix + check_storage_key(key)

    def check(self) -> None:
        """Refuse to start unless the bucket answers to our credentials."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except self._faults as exc:
            raise ConfigurationError(
                f"The artifact bucket {self.bucket!r} cannot be reached ({_reason(exc)}): check "
                "TENANTGATE_ARTIFACT_S3_BUCKET, _ENDPOINT_URL, _REGION and the AWS credentials."
            ) from exc

    def put(self, key: str, data: bytes) -> None:
        self._call("put_object", Bucket=self.bucket, Key=self.object_key(key), Body=data, **self._sse)

    def chunks(self, key: str) -> Iterator[bytes]:
        response = self._call("get_object", Bucket=self.bucket, Key=self.object_key(key))
        body = response["Body"]

        def read() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(_CHUNK)
            except self._faults as exc:
                raise ArtifactStorageUnavailable() from exc
            finally:
                body.close()

        return read()

    def delete(self, key: str) -> None:
        self._call("delete_object", Bucket=self.bucket, Key=self.object_key(key))

    def list_prefix(self, prefix: str) -> Iterator[str]:
        """Every object under the tenant's prefix (listed from S3, so objects without rows too)."""
        return iter(list(self._list(check_tenant_prefix(prefix))))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under the tenant's prefix, a thousand per request (S3's batch size)."""
        keys = list(self._list(check_tenant_prefix(prefix)))
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._prefix + key} for key in keys[start : start + 1000]]
            response = self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            if response.get("Errors"):
                raise ArtifactStorageUnavailable()
        return len(keys)

    def _list(self, prefix: str) -> Iterator[str]:
        """Storage keys (our prefix stripped) of every object under ``prefix``, page by page."""
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", Bucket=self.bucket, Prefix=self._prefix + prefix, **token)
            for item in page.get("Contents", ()):
                yield str(item["Key"])[len(self._prefix) :]
            if not page.get("IsTruncated"):
                return
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def copy(self, source: str, target: str) -> None:
        self._call(
            "copy_object",
            Bucket=self.bucket,
            Key=self.object_key(target),
            CopySource={"Bucket": self.bucket, "Key": self.object_key(source)},
            MetadataDirective="COPY",
            **self._sse,  # a copy is encrypted as requested here, not by whatever the bucket defaults to
        )

    def presign(self, key: str, *, ttl_s: int, content_type: str, filename: str) -> str:
        params = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseContentType": content_type,
            "ResponseCacheControl": "private, no-store",
        }
        try:
            url: str = self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s)
        except self._faults as exc:  # no credentials to sign with
            raise ArtifactStorageUnavailable() from exc
        return url

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client, operation)(**params)
        except self._client_error as exc:
            if _error_code(exc) in _MISSING:
                raise FileNotFoundError(params["Key"]) from None
            raise ArtifactStorageUnavailable() from exc
        except self._faults as exc:
            raise ArtifactStorageUnavailable() from exc


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _reason(exc: Exception) -> str:
    code = _error_code(exc)
    return f"{type(exc).__name__} {code}".strip()
