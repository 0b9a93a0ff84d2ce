"""Content type from the bytes themselves: a caller's declared type is never trusted.

A few formats are recognised by their magic bytes (PDF, PNG, JPEG, GIF, ZIP); text is told
apart as JSON, HTML or plain text; anything else is ``application/octet-stream``.
"""

from __future__ import annotations

import json

__all__ = ["OCTET_STREAM", "sniff"]

OCTET_STREAM = "application/octet-stream"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
)
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<!--")
# Text may hold these control characters (tab, newline, form feed, carriage return); others mean binary.
_TEXT_CONTROLS = frozenset("\t\n\x0c\r")


def sniff(data: bytes) -> str:
    """The media type ``data`` is, judged by its content alone."""
    for magic, media in _MAGIC:
        if data.startswith(magic):
            return media
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return OCTET_STREAM
    if any(ch < " " and ch not in _TEXT_CONTROLS for ch in text) or "\x7f" in text:
        return OCTET_STREAM
    head = text.lstrip()
    if head[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return "application/json"
    if head[:20].lower().startswith(_HTML_STARTS):
        return "text/html"
    return "text/plain"
