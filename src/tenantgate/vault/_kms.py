"""AWS KMS as the key provider (``pip install 'tenantgate[kms]'``).

Data keys are wrapped with ``Encrypt`` under the configured KMS key, with the wrap context
(tenant id, data key id) as the ``EncryptionContext``, so KMS itself refuses to unwrap a
data key copied to another tenant's row. ``kek_id`` is the key ARN KMS answers with;
unwrapping names it, so changing ``TENANTGATE_KMS_KEY_ID`` and running ``rotate-kek`` moves
every data key to the new KMS key. KMS's own key rotation is transparent to us.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenantgate.errors import ConfigurationError
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable

__all__ = ["AwsKms"]

# KMS answers these when the ciphertext, its context or its key does not fit: the one opaque error.
_UNREADABLE = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "InvalidKeyUsageException"})


class AwsKms:
    """KEKs in AWS KMS (or anything speaking its API at ``endpoint_url``)."""

    name = "aws_kms"

    def __init__(
        self,
        *,
        key_id: str,
        region: str,
        endpoint_url: str | None = None,
        timeout_s: float = 5.0,
        client: Any = None,
    ) -> None:
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError("The aws_kms key provider needs boto3: pip install 'tenantgate[kms]'.") from exc
        if not key_id:
            raise ConfigurationError("TENANTGATE_KMS_KEY_ID is required with the aws_kms key provider.")
        config = botocore.config.Config(
            connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2, "mode": "standard"}
        )
        self._client: Any = client or boto3.client("kms", region_name=region, endpoint_url=endpoint_url, config=config)
        self._key_id = key_id
        self._client_error: type[Exception] = botocore.exceptions.ClientError
        self._faults: tuple[type[Exception], ...] = (botocore.exceptions.BotoCoreError,)

    @property
    def current_kek_id(self) -> str:
        return self._key_id

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> tuple[str, bytes]:
        try:
            response = self._client.encrypt(KeyId=self._key_id, Plaintext=dek, EncryptionContext=dict(context))
            return str(response["KeyId"]), bytes(response["CiphertextBlob"])
        except self._client_error as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc
        except self._faults as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        try:
            response = self._client.decrypt(CiphertextBlob=wrapped, KeyId=kek_id, EncryptionContext=dict(context))
            return bytes(response["Plaintext"])
        except self._client_error as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if code in _UNREADABLE:
                raise CredentialUnreadable from None
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc
        except self._faults as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc

    def rotate(self) -> str:
        """KMS rotates key material itself; re-wrapping moves data keys to the newest material of the current key."""
        return self._key_id

    def _unavailable(self, exc: Exception) -> str:
        return f"AWS KMS refused or did not answer ({type(exc).__name__}); check the key id, region and credentials."
