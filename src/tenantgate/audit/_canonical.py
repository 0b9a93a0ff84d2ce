"""The bytes the hash chain is made of: canonical JSON, the payload digest, the event header, the link.

``hash = sha256(prev_hash || header || payload_digest)`` where ``header`` is the canonical
JSON of every column except the payload, ``erased_at`` and the two hashes, and
``payload_digest = sha256(canonical JSON of the payload)``. The payload enters the chain
only through its digest, so erasing it (payload NULL, digest kept) leaves the chain whole.

Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN or infinities; timestamps as UTC
ISO 8601 with microseconds. A payload must read back from ``jsonb`` as the same canonical
bytes, or verification would call an untouched event tampered; :func:`json_safe` enforces
that by normalising the two float forms ``jsonb`` changes and refusing everything else
that is not plain JSON.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tenantgate.errors import InvalidInput

__all__ = [
    "GENESIS",
    "MAX_PAYLOAD_BYTES",
    "PLATFORM_CHAIN",
    "canonical_json",
    "check_text",
    "digest",
    "header",
    "json_safe",
    "link",
    "timestamp",
]

GENESIS = bytes(32)
# The chain of platform events (tenant creation, platform keys, unattributable auth
# failures). No tenant has this id; only the admin role writes it.
PLATFORM_CHAIN = uuid.UUID(int=0)
# Audit payloads are facts about an action, not documents; a bound keeps one noisy caller
# from turning the evidence table into blob storage.
MAX_PAYLOAD_BYTES = 64 * 1024
_MAX_DEPTH = 32
# jsonb prints numbers without an exponent, so a float this large reads back as an int.
_EXPONENT_FLOAT = 1e16


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII kept as is (encode as UTF-8 for bytes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(canonical: str) -> bytes:
    """sha256 of canonical JSON text, as UTF-8."""
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def timestamp(moment: datetime) -> str:
    """UTC, ISO 8601, always with microseconds: ``2025-01-31T12:00:00.000000Z``."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def header(
    *,
    tenant_id: uuid.UUID,
    seq: int,
    occurred_at: datetime,
    action: str,
    decision: str | None,
    code: str | None,
    tool: str | None,
    principal_id: uuid.UUID | None,
    principal_kind: str | None,
    acting_for: uuid.UUID | None,
    request_id: str | None,
) -> bytes:
    """The canonical header of one event. tenant_id and seq are in it: a moved event breaks the chain."""
    return canonical_json(
        {
            "tenant_id": str(tenant_id),
            "seq": seq,
            "occurred_at": timestamp(occurred_at),
            "action": action,
            "decision": decision,
            "code": code,
            "tool": tool,
            "principal_id": _id(principal_id),
            "principal_kind": principal_kind,
            "acting_for": _id(acting_for),
            "request_id": request_id,
        }
    ).encode("utf-8")


def link(prev_hash: bytes, header_bytes: bytes, payload_digest: bytes) -> bytes:
    """One link of the chain. prev_hash and the digest are fixed-length, so the concatenation is unambiguous."""
    return hashlib.sha256(prev_hash + header_bytes + payload_digest).digest()


def check_text(value: str, what: str, *, max_length: int) -> None:
    """PostgreSQL text holds no NUL, and the chain's UTF-8 holds no lone surrogates: refuse both here."""
    if len(value) > max_length:
        raise InvalidInput(f"The audit {what} is longer than {max_length} characters.")
    if "\x00" in value:
        raise InvalidInput(f"The audit {what} contains a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"The audit {what} is not valid Unicode text.") from exc


def json_safe(payload: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A plain-JSON copy of ``payload`` in the form ``jsonb`` gives back, and its canonical text.

    Raises InvalidInput for anything that is not JSON (times, UUIDs, bytes, sets, NaN, ...):
    the caller converts and redacts; this layer never guesses a representation.
    """
    if not isinstance(payload, Mapping):
        raise InvalidInput("An audit payload is a mapping of names to JSON values.")
    plain = _plain(payload, "payload", 0)
    try:
        text = canonical_json(plain)
    except ValueError as exc:  # an int too long to print (sys.get_int_max_str_digits)
        raise InvalidInput(f"The audit payload cannot be written as JSON: {exc}") from exc
    if len(text.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise InvalidInput(f"The audit payload is larger than {MAX_PAYLOAD_BYTES // 1024} KiB; record less.")
    return plain, text


def _plain(value: Any, path: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise InvalidInput(f"The audit payload is nested deeper than {_MAX_DEPTH} levels at {path}.")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)  # an IntEnum is stored as its number
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"The audit payload holds a non-finite number at {path}.")
        if value == 0:
            return 0.0  # jsonb has no negative zero
        if value.is_integer() and abs(value) >= _EXPONENT_FLOAT:
            return int(value)
        return value
    if isinstance(value, str):
        check_text(value, f"payload text at {path}", max_length=MAX_PAYLOAD_BYTES)
        return str.__str__(value)  # a StrEnum is stored as its value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"The audit payload has a non-text key {key!r} at {path}.")
            check_text(key, f"payload key at {path}", max_length=200)
            out[str.__str__(key)] = _plain(item, f"{path}.{key}", depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidInput(
        f"The audit payload holds a {type(value).__name__} at {path}, which is not JSON: convert it "
        "(ISO text for times, str for ids) before recording."
    )
