"""The redaction pipeline: key names, then value detectors, over JSON-like data, text and log events.

A :class:`Redactor` is configured once (the installation owns one) and used by everything
that writes data down or hands it on: structured logs (:meth:`Redactor.process_log`, a
structlog processor), audit payloads, stored confirmation arguments, tool output and tool
errors before they reach the caller or the model. Where secrets are forbidden outright
(signal and directive payloads), :meth:`Redactor.reject_secrets` refuses them instead.

The pipeline is a tuple of plain callables of one type, :data:`Detector`: text in, the
spans of secrets in it out (structlog's shape, STYLE.md §5). The defaults are the
registry of known values (:class:`KnownSecrets`, the vault's sink) and the credential
formats (:class:`ShapeDetector`); an operator may append their own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from tenantgate.errors import SecretRejected
from tenantgate.redact._keys import SecretKeys
from tenantgate.redact._known import MIN_KNOWN_LENGTH, KnownSecrets
from tenantgate.redact._shapes import ShapeDetector

__all__ = ["KEY_RULE", "Detector", "Finding", "Redactor", "Span", "marker"]

Span = tuple[int, int, str]
"""Where a secret is in a text: ``(start, end, rule)``."""

Detector = Callable[[str], Sequence[Span]]
"""One step of the pipeline: a text in, the spans of the secrets it holds out.

The text may be several texts joined by NUL (one scan for a whole payload): a detector's
match must not cross a NUL character.
"""

KEY_RULE = "key_name"
_DEPTH_RULE = "too_deep"
_MAX_DEPTH = 64
# Nothing any detector finds is shorter than this (the shortest known value, the shortest
# shape), so shorter text (most keys, levels, codes, numbers as text) is passed untouched.
_MIN_TEXT = min(MIN_KNOWN_LENGTH, 8)
_PLAIN = (int, float, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)
_KEY_VERDICTS = 8192
# Texts are scanned joined by a character no shape's match may cross (see ``_shapes``), so
# one scan of the joined text finds exactly what one scan per text would.
_SEPARATOR = "\x00"


def marker(rule: str) -> str:
    """The text a secret is replaced with: ``[redacted:<rule>]``."""
    return f"[redacted:{rule}]"


@dataclass(frozen=True, slots=True)
class Finding:
    """A secret found in a payload: where (a JSON path like ``$.headers.Authorization``) and by which rule."""

    path: str
    rule: str


def _hides(value: Any) -> bool:
    # Under a secret key, a flag (``has_password: true``), a null or an empty text shows nothing.
    return not (value is None or isinstance(value, bool) or (isinstance(value, str) and not value))


def _replace(text: str, spans: Sequence[Span], offset: int) -> str:
    """``text`` with each span (positions counted from ``offset``) replaced by its marker."""
    parts: list[str] = []
    at = 0
    for start, end, rule in spans:
        parts.append(text[at : start - offset])
        parts.append(marker(rule))
        at = end - offset
    parts.append(text[at:])
    return "".join(parts)


def _replacements(texts: list[str], spans: list[Span]) -> dict[str, str]:
    """From the spans of the joined ``texts``, each affected text and its redacted form."""
    starts: list[int] = []
    at = 0
    for text in texts:
        starts.append(at)
        at += len(text) + len(_SEPARATOR)
    per_text: dict[int, list[Span]] = {}
    for start, end, rule in spans:
        index = bisect.bisect_right(starts, start) - 1
        # No detector's match crosses the separator; clip anyway, so a text never bleeds into the next.
        per_text.setdefault(index, []).append((start, min(end, starts[index] + len(texts[index])), rule))
    return {texts[i]: _replace(texts[i], found, starts[i]) for i, found in per_text.items()}


def _merge(spans: list[Span]) -> list[Span]:
    spans.sort()
    merged = [spans[0]]
    for start, end, rule in spans[1:]:
        last_start, last_end, last_rule = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(end, last_end), last_rule)
        else:
            merged.append((start, end, rule))
    return merged


class Redactor:
    """Replaces secrets with ``[redacted:<rule>]`` markers; never modifies its input.

    ``detectors`` replaces the default pipeline ``(known, ShapeDetector())``; include
    ``known`` in it to keep matching the registered values.
    """

    def __init__(
        self,
        *,
        known: KnownSecrets | None = None,
        keys: SecretKeys | None = None,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        self.known = known if known is not None else KnownSecrets()
        self._is_secret_key = keys if keys is not None else SecretKeys()
        self._detectors: tuple[Detector, ...] = (
            tuple(detectors) if detectors is not None else (self.known, ShapeDetector())
        )
        self._key_marker = marker(KEY_RULE)
        self._key_verdicts: dict[str, bool] = {}  # a plain dict: the hot path reads it without a call

    # --- text ----------------------------------------------------------------------------------

    def spans(self, text: str) -> list[Span]:
        """Where the secrets in ``text`` are, merged and in order."""
        if len(text) < _MIN_TEXT:
            return []
        found: list[Span] = []
        for detect in self._detectors:
            found.extend(detect(text))
        return _merge(found) if found else found

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced by its marker (``text`` itself when there is none)."""
        if len(text) < _MIN_TEXT:
            return text
        spans = self.spans(text)
        return _replace(text, spans, 0) if spans else text

    # --- data ----------------------------------------------------------------------------------

    def redact(self, value: Any) -> Any:
        """JSON-like data with secrets replaced, at any depth: by key name, then in every text.

        Mappings come back as dicts and sequences as lists where something changed; parts
        with nothing to redact are returned as they are (the input is never modified).
        """
        return self._redact(value, objects=False)

    def _redact(self, value: Any, *, objects: bool) -> Any:
        # Gather every text worth scanning and scan them joined: one call per detector for the
        # whole value. Only a value with something to redact (rare) is walked again to rebuild
        # it, with each text's replacement already computed from that one scan.
        texts: list[str] = []
        forced = self._gather(value, texts, 0, objects)
        spans = self.spans(_SEPARATOR.join(texts)) if texts else []
        if not forced and not spans:
            return value
        return self._rebuild(value, 0, objects, _replacements(texts, spans))

    def _gather(self, value: Any, texts: list[str], depth: int, objects: bool) -> bool:
        """Collect the texts of ``value`` into ``texts``; True if a key name or the depth calls for redaction.

        The hot loop of every log line: exact type checks first (JSON data is dicts, lists,
        str and numbers), key verdicts from a dict before any call.
        """
        kind = type(value)
        if kind is str:
            if len(value) >= _MIN_TEXT:
                texts.append(value)
            return False
        if kind in _PLAIN_TYPES:
            return False
        if depth >= _MAX_DEPTH:
            return True
        forced = False
        if kind is dict or isinstance(value, Mapping):
            verdicts = self._key_verdicts
            append = texts.append
            for key, item in value.items():
                if type(key) is str:
                    secret = verdicts.get(key)
                    if secret is None:
                        secret = self._judge_key(key)
                    if len(key) >= _MIN_TEXT:
                        append(key)
                    if secret and _hides(item):
                        forced = True
                        continue  # replaced whole: its texts need no scan
                item_kind = type(item)
                if item_kind is str:
                    if len(item) >= _MIN_TEXT:
                        append(item)
                elif item_kind not in _PLAIN_TYPES and self._gather(item, texts, depth + 1, objects):
                    forced = True
            return forced
        if kind is list or kind is tuple or isinstance(value, list | tuple):
            for item in value:
                if self._gather(item, texts, depth + 1, objects):
                    forced = True
            return forced
        if isinstance(value, str):
            if len(value) >= _MIN_TEXT:
                texts.append(value)
        elif objects and not isinstance(value, _PLAIN):
            texts.append(str(value))
        return False

    def _judge_key(self, key: str) -> bool:
        verdict = self._is_secret_key(key)
        if len(self._key_verdicts) >= _KEY_VERDICTS:
            self._key_verdicts.clear()  # keys chosen by callers must not grow this forever
        self._key_verdicts[key] = verdict
        return verdict

    def _rebuild(self, value: Any, depth: int, objects: bool, replaced: dict[str, str]) -> Any:
        """``value`` with the texts in ``replaced`` swapped and secret keys' values masked; copies only what changed."""
        kind = type(value)
        if kind is str or isinstance(value, str):
            return replaced.get(value, value)
        if kind in _PLAIN_TYPES or isinstance(value, _PLAIN):
            return value
        if depth >= _MAX_DEPTH:
            return marker(_DEPTH_RULE)  # deeper than any honest payload, or a cycle
        if kind is dict or isinstance(value, Mapping):
            verdicts = self._key_verdicts
            out: dict[Any, Any] = {}
            changed = False
            for key, item in value.items():
                new_key = key
                if isinstance(key, str):
                    new_key = replaced.get(key, key)
                    secret = verdicts.get(key)
                    if secret is None:
                        secret = self._judge_key(key)
                    if secret and _hides(item):
                        out[new_key] = self._key_marker
                        changed = True
                        continue
                item_kind = type(item)
                if item_kind is str:
                    new_item = replaced.get(item, item)
                elif item_kind in _PLAIN_TYPES:
                    new_item = item
                else:
                    new_item = self._rebuild(item, depth + 1, objects, replaced)
                changed = changed or new_item is not item or new_key is not key
                out[new_key] = new_item
            return out if changed else value
        if kind is list or kind is tuple or isinstance(value, list | tuple):
            items = [self._rebuild(item, depth + 1, objects, replaced) for item in value]
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        if objects:
            # A log value of another type is rendered as text anyway: its redacted text replaces it.
            return replaced.get(str(value), value)
        return value

    def findings(self, value: Any) -> list[Finding]:
        """Every secret in JSON-like data, by path and rule (never the value)."""
        return list(self._find(value, "$", 0))

    def _find(self, value: Any, path: str, depth: int) -> Iterator[Finding]:
        if isinstance(value, str):
            for _, _, rule in self.spans(value):
                yield Finding(path, rule)
        elif depth >= _MAX_DEPTH:
            yield Finding(path, _DEPTH_RULE)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                where = f"{path}.{key}"
                if isinstance(key, str):
                    for _, _, rule in self.spans(key):
                        yield Finding(f"{path} (a key)", rule)
                    if self._is_secret_key(key) and _hides(item):
                        yield Finding(where, KEY_RULE)
                        continue
                yield from self._find(item, where, depth + 1)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                yield from self._find(item, f"{path}[{index}]", depth + 1)

    def reject_secrets(self, payload: Any, *, what: str = "payload") -> None:
        """Raise :class:`SecretRejected` if ``payload`` holds anything secret-shaped; it is stored as is otherwise.

        For payloads where secrets are forbidden outright (signals, directives): a secret is
        refused, not silently masked, so the caller learns to send a credential reference.
        The error names the JSON path and the rule, never the value.
        """
        found = self.findings(payload)
        if not found:
            return
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise SecretRejected(
            f"The {what} holds a secret at {first.path} (rule {first.rule}){more}. Secrets are not allowed here: "
            "store the secret as a credential and refer to it by name or id.",
            path=first.path,
            rule=first.rule,
            count=len(found),
        )

    # --- logs ----------------------------------------------------------------------------------

    def process_log(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
        """A structlog processor: the event with every secret redacted (place it before the renderer)."""
        redacted: Mapping[str, Any] = self._redact(event_dict, objects=True)
        return redacted
