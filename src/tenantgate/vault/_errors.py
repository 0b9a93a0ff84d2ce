"""The vault's two failures: a ciphertext that will not open, and a key provider that will not answer."""

from __future__ import annotations

from tenantgate.errors import TenantgateError

__all__ = ["CredentialUnreadable", "KeyProviderUnavailable"]


class CredentialUnreadable(TenantgateError):
    """The credential cannot be opened.

    One opaque error for every reason (tampered, truncated, moved to another row or tenant,
    sealed under a key that is gone or destroyed), as cryptography's ``InvalidToken``: the
    caller learns nothing an attacker could use to tell the cases apart.
    """

    code = "credential_unreadable"

    def __init__(self, message: str | None = None) -> None:
        # No fields, no detail: the message is always the same.
        super().__init__(message or "The credential cannot be opened; store it again to replace it.")


class KeyProviderUnavailable(TenantgateError):
    """The key provider (key file, Vault transit, KMS) did not answer; the request was refused, not guessed at."""

    code = "key_provider_unavailable"
