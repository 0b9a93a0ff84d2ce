"""What a credential may look like: its kinds, the fields each kind needs, and the input checks.

Checked before anything is sealed or stored; messages name fields, never their values.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum
from typing import Any

from tenantgate.errors import InvalidInput

__all__ = [
    "MAX_FIELDS",
    "MAX_METADATA_BYTES",
    "MAX_VALUE_CHARS",
    "NOT_SECRET_FIELDS",
    "Credential",
    "CredentialKind",
    "check_metadata",
    "check_name",
    "check_provider",
    "check_secret",
    "required_fields",
    "secret_values",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
_FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_FIELDS = 32
MAX_VALUE_CHARS = 16_384
MAX_METADATA_BYTES = 8_192


# Fields stored with a secret that are not secret themselves (an OAuth expiry, a token type, a
# client id, a username). They are never registered for exact-match redaction: a timestamp or
# an id would otherwise be blanked wherever the same value appears in logs or tool output.
NOT_SECRET_FIELDS = frozenset({"expires_at", "expires_in", "token_type", "scope", "client_id", "username"})


def secret_values(secret: Mapping[str, str]) -> list[str]:
    """The values of ``secret`` that are secrets (for the redaction pipeline's known values)."""
    return [value for name, value in secret.items() if name not in NOT_SECRET_FIELDS]


@dataclass(frozen=True, slots=True)
class Credential:
    """A tenant's credential, opened for one tool call. ``secret`` never leaves the handler."""

    id: uuid.UUID
    name: str
    kind: str  # api_key, oauth, webhook_secret, basic_auth, ...
    provider: str | None
    secret: Mapping[str, str] = dataclass_field(repr=False)
    metadata: Mapping[str, Any] = dataclass_field(default_factory=dict)


class CredentialKind(StrEnum):
    """What a credential is; it decides which secret fields it needs."""

    API_KEY = "api_key"
    OAUTH = "oauth"
    WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 - names of kinds, not secrets
    BASIC_AUTH = "basic_auth"
    BEARER_TOKEN = "bearer_token"  # noqa: S105
    PASSWORD = "password"  # noqa: S105


# Fields a kind cannot work without; others may be added (client_secret, refresh_token, ...).
_REQUIRED: dict[CredentialKind, frozenset[str]] = {
    CredentialKind.API_KEY: frozenset({"api_key"}),
    CredentialKind.OAUTH: frozenset({"access_token"}),
    CredentialKind.WEBHOOK_SECRET: frozenset({"secret"}),
    CredentialKind.BASIC_AUTH: frozenset({"username", "password"}),
    CredentialKind.BEARER_TOKEN: frozenset({"token"}),
    CredentialKind.PASSWORD: frozenset({"password"}),
}


def required_fields(kind: CredentialKind) -> frozenset[str]:
    """The secret fields a credential of ``kind`` must have."""
    return _REQUIRED[kind]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("A credential name is 1-100 of a-z, 0-9, '_', '.', '-', starting with a letter or digit.")
    return name


def check_secret(kind: CredentialKind, secret: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(secret, Mapping) or not 1 <= len(secret) <= MAX_FIELDS:
        raise InvalidInput(f"A secret is an object of 1 to {MAX_FIELDS} fields.")
    for field, value in secret.items():
        if not isinstance(field, str) or not _FIELD.fullmatch(field):
            raise InvalidInput("Secret field names are 1-64 of a-z, 0-9 and '_', starting with a letter.")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_VALUE_CHARS:
            # The message names the field, never its value.
            raise InvalidInput(f"Secret field {field!r} must be text of 1 to {MAX_VALUE_CHARS} characters.")
    missing = sorted(_REQUIRED[kind] - set(secret))
    if missing:
        raise InvalidInput(f"A {kind.value} credential needs the secret fields {missing}.", missing=missing)
    return dict(secret)


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise InvalidInput("Credential metadata is a JSON object.")
    try:
        text = json.dumps(dict(metadata), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("Credential metadata must be plain JSON.") from exc
    if len(text.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InvalidInput(f"Credential metadata is limited to {MAX_METADATA_BYTES} bytes of JSON.")
    result: dict[str, Any] = json.loads(text)
    return result


def check_provider(provider: str | None) -> str | None:
    if provider is not None and (not isinstance(provider, str) or not 1 <= len(provider) <= 100):
        raise InvalidInput("A credential provider is 1 to 100 characters.")
    return provider
