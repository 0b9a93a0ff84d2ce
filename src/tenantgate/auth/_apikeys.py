"""API key format and hashing: ``tg_<prefix>_<secret>``; stored only as HMAC-SHA256 with a pepper."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from enum import StrEnum

from tenantgate.errors import Unauthenticated

__all__ = ["KeyKind", "PresentedKey", "generate_key", "hash_key", "keys_match", "parse_key"]

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LEN = 12
_SECRET_BYTES = 32  # 256 bits
_KEY_RE = re.compile(r"^(tg|tgp)_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
# Compared against when the prefix is unknown, so a miss costs what a wrong secret costs.
_DUMMY_HASH = secrets.token_bytes(32)


class KeyKind(StrEnum):
    TENANT = "tg"
    PLATFORM = "tgp"


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """A syntactically valid key: its kind, its public prefix and the whole secret string."""

    kind: KeyKind
    prefix: str
    value: str

    def __repr__(self) -> str:  # never print the secret
        return f"PresentedKey(kind={self.kind.value!r}, prefix={self.prefix!r})"


def generate_key(kind: KeyKind = KeyKind.TENANT) -> PresentedKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LEN))
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return PresentedKey(kind=kind, prefix=prefix, value=f"{kind.value}_{prefix}_{secret}")


def parse_key(value: str) -> PresentedKey:
    match = _KEY_RE.fullmatch(value)
    if match is None:
        raise Unauthenticated("Malformed API key: expected tg_<prefix>_<secret>.")
    return PresentedKey(kind=KeyKind(match[1]), prefix=match[2], value=value)


def hash_key(pepper: bytes, key: PresentedKey) -> bytes:
    return hmac.new(pepper, key.value.encode("ascii"), hashlib.sha256).digest()


def keys_match(pepper: bytes, key: PresentedKey, stored: bytes | None) -> bool:
    """Constant-time comparison; an unknown prefix (``stored is None``) takes the same path."""
    return hmac.compare_digest(hash_key(pepper, key), stored if stored is not None else _DUMMY_HASH)
