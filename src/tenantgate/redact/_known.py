"""Redaction by known value: every credential opened in this process is matched exactly, anywhere.

Shapes catch formats; this catches the rest. A tenant's SMTP password or a provider token
with no recognisable format is registered when the vault opens it (``known.add(value)``),
and from then on, for the life of the process, any text that contains it (a tool echoing
it back, an error message quoting a URL, a log line) has it replaced.

The registry is shared by every thread and task. Adding is rare and matching is constant,
so adding marks the matcher stale and the next match rebuilds it, once: one Aho-Corasick
automaton over every value, whatever their number.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from urllib.parse import quote

import ahocorasick_rs

__all__ = ["MIN_KNOWN_LENGTH", "KnownSecrets"]

# Shorter values (``true``, ``admin``, a port) would redact ordinary words everywhere.
MIN_KNOWN_LENGTH = 8
RULE = "known_secret"

Span = tuple[int, int, str]


def _forms(value: str) -> set[str]:
    """The value as it appears in text: as is, percent-encoded (URLs, forms) and JSON-escaped."""
    forms = {value, quote(value, safe=""), json.dumps(value, ensure_ascii=False)[1:-1]}
    return {f for f in forms if len(f) >= MIN_KNOWN_LENGTH}


class KnownSecrets:
    """Exact values to redact wherever they appear. Thread-safe; ``add`` is the vault's sink."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._automaton: ahocorasick_rs.AhoCorasick | None = None
        self._stale = False
        self.add_all(values)

    def add(self, value: str) -> None:
        """Register one secret value; values shorter than :data:`MIN_KNOWN_LENGTH` are ignored."""
        self.add_all((value,))

    def add_all(self, values: Iterable[str]) -> None:
        """Register several values at once (one rebuild of the matcher, not one per value)."""
        fresh: set[str] = set()
        for value in values:
            if isinstance(value, str) and len(value) >= MIN_KNOWN_LENGTH:
                fresh |= _forms(value)
        with self._lock:
            fresh -= self._values
            if fresh:
                self._values |= fresh
                self._stale = True

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)

    def __contains__(self, value: object) -> bool:
        with self._lock:
            return value in self._values

    def _current(self) -> ahocorasick_rs.AhoCorasick | None:
        if self._stale:
            with self._lock:
                if self._stale:
                    # Longest first at one place: a value that contains another is redacted whole.
                    self._automaton = ahocorasick_rs.AhoCorasick(
                        sorted(self._values), matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
                    )
                    self._stale = False
        return self._automaton

    def __call__(self, text: str) -> list[Span]:
        """Where registered values occur in ``text``: ``[(start, end, "known_secret"), ...]``."""
        automaton = self._current()
        if automaton is None:
            return []
        return [(start, end, RULE) for _, start, end in automaton.find_matches_as_indexes(text)]
