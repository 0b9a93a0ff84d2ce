"""Redaction by value shape: credential formats recognised wherever they appear in text.

Each :class:`Shape` names the literal text every match contains (its anchors: ``ghp_``,
``AKIA``, ``eyJ``, ``://``) and a regular expression matched at an anchor. One
Aho-Corasick automaton over every anchor of every shape finds the candidate places in a
single pass in native code; the expressions run only there. Text with no anchor (almost
all of it) costs one scan, whatever the number of shapes.

No match may cross a NUL character (every pattern's classes exclude it): the redactor scans
many texts joined by NUL in one pass, and a match must stay inside the text it starts in.

A shape may redact only part of its match (``group``): ``Bearer <token>`` keeps the
scheme, ``postgres://user:<password>@host`` keeps the user and host.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ahocorasick_rs

__all__ = ["DEFAULT_SHAPES", "Shape", "ShapeDetector"]

Span = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class Shape:
    """One credential format: where to look (``anchors``), what matches there, and which part is secret."""

    rule: str
    anchors: tuple[str, ...]
    pattern: str  # matched at the start of an anchor
    group: int | str = 0
    word_start: bool = True  # the anchor must not continue a word (``xghp_`` is not a GitHub token)
    check: Callable[[str], bool] | None = None  # a last look at the secret part, for shapes prose can take


def _random_looking(token: str) -> bool:
    # Machine-made tokens mix letters and digits; words and identifiers in prose rarely do.
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def _basic_credentials(token: str) -> bool:
    # ``Basic <base64 of user:password>``: "Basic instructions" does not decode to that.
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    return ":" in raw and raw.isprintable()


_PLACEHOLDER = re.compile(r"^(?:\$\{.*|\{\{.*|%\(.*|<.*|\*+|x+|\.+|\[redacted.*)$", re.IGNORECASE)


def _assigned_secret(value: str) -> bool:
    # ``password=hunter22`` yes; ``password: required``, ``token=${TOKEN}``, ``secret=****`` no.
    if _PLACEHOLDER.match(value):
        return False
    return not (value.isalpha() and (value.islower() or value.isupper() or value.istitle()))


def _cased(*words: str) -> tuple[str, ...]:
    """Anchors are case-sensitive: the spellings text uses (``token``, ``Token``, ``TOKEN``)."""
    return tuple(dict.fromkeys(form for w in words for form in (w, w.capitalize(), w.upper())))


_WORD_END = r"(?![A-Za-z0-9_-])"
_B64URL = r"[A-Za-z0-9_-]"

DEFAULT_SHAPES: tuple[Shape, ...] = (
    Shape("aws_access_key", ("AKIA", "ASIA", "ABIA", "ACCA"), r"A(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    Shape("github_token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), rf"gh[pousr]_[A-Za-z0-9]{{36,251}}{_WORD_END}"),
    Shape("github_token", ("github_pat_",), rf"github_pat_[A-Za-z0-9_]{{40,}}{_WORD_END}"),
    Shape(
        "gitlab_token",
        ("glpat-", "gldt-", "glrt-", "glptt-", "glsoat-", "glcbt-", "glimt-", "glft-", "gloas-", "glagent-"),
        rf"gl[a-z]{{2,6}}-{_B64URL}{{20,}}",
    ),
    Shape(
        "slack_token",
        ("xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-"),
        r"(?:xox[abpres]|xapp)-[A-Za-z0-9-]{10,}",
    ),
    Shape(
        "slack_webhook", ("hooks.slack.com/",), r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{20,}"
    ),
    Shape(
        "discord_webhook",
        ("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"),
        rf"discord(?:app)?\.com/api/webhooks/[0-9]+/{_B64URL}{{20,}}",
    ),
    Shape("stripe_key", ("sk_live_", "sk_test_", "rk_live_", "rk_test_"), r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    Shape("webhook_secret", ("whsec_",), r"whsec_[A-Za-z0-9+/=_-]{16,}"),
    Shape("anthropic_key", ("sk-ant-",), rf"sk-ant-{_B64URL}{{20,}}"),
    Shape("openai_key", ("sk-",), rf"sk-(?:proj-|svcacct-|admin-)?{_B64URL}{{20,}}", check=_random_looking),
    Shape("google_api_key", ("AIza",), rf"AIza{_B64URL}{{35}}{_WORD_END}"),
    Shape("google_oauth_token", ("ya29.",), rf"ya29\.{_B64URL}{{20,}}"),
    Shape("google_oauth_token", ("1//0",), rf"1//0{_B64URL}{{30,}}"),
    Shape("google_client_secret", ("GOCSPX-",), rf"GOCSPX-{_B64URL}{{20,}}"),
    Shape("huggingface_token", ("hf_",), r"hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])", check=_random_looking),
    Shape("npm_token", ("npm_",), r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    Shape("pypi_token", ("pypi-AgE",), rf"pypi-AgE{_B64URL}{{50,}}"),
    Shape("sendgrid_key", ("SG.",), rf"SG\.{_B64URL}{{16,}}\.{_B64URL}{{16,}}"),
    Shape("tenantgate_key", ("tg_", "tgp_"), rf"tgp?_[a-z0-9]{{12}}_{_B64URL}{{20,}}"),
    Shape("jwt", ("eyJ",), rf"eyJ{_B64URL}{{8,}}\.ey{_B64URL}{{8,}}\.{_B64URL}*"),
    Shape(
        "private_key",
        ("-----BEGIN ",),
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[^\x00]*?-----END [A-Z0-9 ]*-----|[^\x00]*)",
        word_start=False,
    ),
    Shape(
        "bearer_token",
        _cased("bearer"),
        r"(?i:bearer)[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{12,}=*)",
        group="secret",
        check=_random_looking,
    ),
    Shape(
        "basic_auth",
        _cased("basic"),
        r"(?i:basic)[ \t]+(?P<secret>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        group="secret",
        check=_basic_credentials,
    ),
    Shape(
        "url_password", ("://",), r"://[^\s/:@?#\x00]*:(?P<secret>[^\s/@?#\x00]+)@", group="secret", word_start=False
    ),
    Shape(
        "secret_assignment",
        _cased(
            "password",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "api_key",
            "apikey",
            "api-key",
            "access_key",
            "private_key",
        ),
        r"(?i:passw(?:or)?d|passphrase|secret|token|api[_-]?key|access_key|private_key)"
        r"""["']?[ \t]{0,3}[:=][ \t]{0,3}["']?(?P<secret>[^\s"'&,;<>\x00]{6,})""",
        group="secret",
        word_start=False,
        check=_assigned_secret,
    ),
    Shape(
        "cookie_header",
        _cased("cookie:"),
        r"(?i:cookie):[ \t]*(?P<secret>[^\r\n\x00]*=[^\r\n\x00]*)",
        group="secret",
        word_start=False,
    ),
)


class ShapeDetector:
    """Finds every shape's matches in a text: ``detector(text) -> [(start, end, rule), ...]``."""

    def __init__(self, shapes: Sequence[Shape] = DEFAULT_SHAPES) -> None:
        self.shapes = tuple(shapes)
        by_anchor: dict[str, list[tuple[Shape, re.Pattern[str]]]] = {}
        for shape in self.shapes:
            compiled = re.compile(shape.pattern)
            for anchor in shape.anchors:
                by_anchor.setdefault(anchor, []).append((shape, compiled))
        self._anchors = list(by_anchor)
        self._tries = [by_anchor[a] for a in self._anchors]
        self._automaton = ahocorasick_rs.AhoCorasick(self._anchors)

    def __call__(self, text: str) -> list[Span]:
        hits = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if not hits:
            return []
        if len(hits) > 1:
            hits.sort(key=lambda hit: (hit[1], -hit[2]))  # the longest anchor first: ``sk-ant-`` before ``sk-``
        spans: list[Span] = []
        covered = 0
        for index, start, _ in hits:
            if start < covered:
                continue  # inside a secret already found (a JWT's ``eyJ`` in a bearer token)
            for shape, pattern in self._tries[index]:
                if shape.word_start and start and text[start - 1].isalnum():
                    continue
                match = pattern.match(text, start)
                if match is None:
                    continue
                begin, end = match.span(shape.group)
                if begin == end or (shape.check is not None and not shape.check(text[begin:end])):
                    continue
                spans.append((begin, end, shape.rule))
                covered = match.end()
                break
        return spans
