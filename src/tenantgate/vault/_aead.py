"""The sealed-field format, one layer below the vault: AES-256-GCM with a versioned header.

A token is ``version (1 byte) || data key id (16 bytes) || nonce (12 bytes) || ciphertext+tag``.
The header is authenticated too: it is part of the associated data, together with the
canonical bytes of (tenant id, credential id, field name), so a token copied to another
field, row or tenant, or given another key id, fails to open.

These are sharp tools: callers outside ``tenantgate.vault`` use :class:`~tenantgate.vault.Vault`.
"""

from __future__ import annotations

import os
import struct
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantgate.vault._errors import CredentialUnreadable

__all__ = [
    "HEADER_BYTES",
    "KEY_BYTES",
    "VERSION",
    "associated_data",
    "generate_data_key",
    "key_id_of",
    "open_field",
    "seal_field",
]

VERSION = 0x01
KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # GCM's native nonce size: random, never reused under one key in practice (2^-32 at 2^32 seals)
_TAG_BYTES = 16
HEADER_BYTES = 1 + 16 + _NONCE_BYTES
_DOMAIN = b"tenantgate/credential-field/v1\x00"


def generate_data_key() -> bytes:
    """A fresh 256-bit data key from the OS's CSPRNG."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def associated_data(tenant_id: uuid.UUID, credential_id: uuid.UUID, field: str) -> bytes:
    """Canonical, unambiguous bytes of what a field is bound to: fixed-width ids, length-prefixed name."""
    name = field.encode("utf-8")
    return _DOMAIN + tenant_id.bytes + credential_id.bytes + struct.pack(">H", len(name)) + name


def seal_field(key: AESGCM, key_id: uuid.UUID, plaintext: bytes, ad: bytes) -> bytes:
    """Encrypt ``plaintext`` under ``key`` (whose id is ``key_id``), bound to ``ad``."""
    header = bytes([VERSION]) + key_id.bytes
    nonce = os.urandom(_NONCE_BYTES)
    return header + nonce + key.encrypt(nonce, plaintext, header + ad)


def key_id_of(token: bytes) -> uuid.UUID:
    """The data key id a token names; CredentialUnreadable if it is not a token of this format."""
    if len(token) < HEADER_BYTES + _TAG_BYTES or token[0] != VERSION:
        raise CredentialUnreadable
    return uuid.UUID(bytes=bytes(token[1:17]))


def open_field(key: AESGCM, key_id: uuid.UUID, token: bytes, ad: bytes) -> bytes:
    """Decrypt a token sealed by :func:`seal_field`; every failure is the one CredentialUnreadable."""
    # Checked as bytes, not by building a UUID: this is the hot path of every open.
    if len(token) < HEADER_BYTES + _TAG_BYTES or token[0] != VERSION or token[1:17] != key_id.bytes:
        raise CredentialUnreadable
    header, nonce, body = token[:17], token[17:HEADER_BYTES], token[HEADER_BYTES:]
    try:
        return key.decrypt(nonce, body, header + ad)
    except InvalidTag:
        raise CredentialUnreadable from None
