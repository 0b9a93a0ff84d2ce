"""Redaction by key name: which mapping keys hold secrets, whatever their case, separators or depth.

A key is split into lowercase words (``X-Api-Key`` -> ``x api key``, ``clientSecret`` ->
``client secret``) and judged by its words, so every spelling of a name is one rule:
``authorization``, ``Set-Cookie``, ``AWS_SECRET_ACCESS_KEY``, ``db_password`` and
``refreshToken`` are secret; ``tokenizer``, ``max_tokens``, ``password_policy``,
``api_key_id`` and ``secret_name`` are not (they describe or point at secrets, they do
not hold them). Judgements are cached per key text: log and audit keys repeat endlessly.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

__all__ = ["SecretKeys", "split_words"]

# The last word of a key that holds a secret: ``db_password``, ``github_token``, ``Cookie``.
_SECRET_LAST = frozenset(
    {
        "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token", "cookie", "cookies",
        "authorization", "apikey", "privatekey", "bearer", "jwt", "otp", "pin", "sessionid",
    }
)  # fmt: skip
# The last two words of a key that holds a secret: ``x_api_key``, ``private-key``, ``clientSecret``.
_SECRET_PAIRS = frozenset(
    {
        "api key", "private key", "secret key", "access key", "signing key", "encryption key",
        "master key", "session key", "client key", "auth token", "session id", "connection string",
        "webhook url", "shared key", "account key", "sas token", "app password",
    }
)  # fmt: skip
# A secret word followed by one of these still names the secret itself: ``password_value``.
_VALUE_WORDS = frozenset({"value", "plain", "plaintext", "raw", "str", "string", "text", "b64", "base64", "hex"})
# ``next_page_token`` is a cursor, ``max_token`` a count: the word before ``token`` says so.
_NOT_SECRET_BEFORE_TOKEN = frozenset({"page", "next", "continuation", "sync", "max", "num", "total", "count", "cancel"})
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_CACHE_LIMIT = 8192


def split_words(key: str) -> list[str]:
    """``X-Api-Key`` -> ``["x", "api", "key"]``; ``clientSecret`` -> ``["client", "secret"]``."""
    return [w.lower() for w in _CAMEL.findall(key)]


def _judge(words: list[str], extra: frozenset[str]) -> bool:
    if not words:
        return False
    if "".join(words) in extra or " ".join(words) in extra:
        return True
    last = words[-1]
    if len(words) > 1 and f"{words[-2]} {last}" in _SECRET_PAIRS:
        return True
    if last in _VALUE_WORDS and len(words) > 1:
        return _judge(words[:-1], extra)
    if last in _SECRET_LAST:
        return not (last == "token" and len(words) > 1 and words[-2] in _NOT_SECRET_BEFORE_TOKEN)
    # ``apikey``, ``accesstoken``, ``clientsecret``: one word made of a secret name.
    return len(words) == 1 and any(last.endswith(s) for s in ("token", "secret", "password", "apikey"))


class SecretKeys:
    """Decides whether a mapping key names a secret; ``extra`` adds exact names (any spelling)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._extra = frozenset(
            form for name in extra for form in ("".join(split_words(name)), " ".join(split_words(name)))
        )
        self._cache: dict[str, bool] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str) -> bool:
        """True when the value under ``key`` is a secret and must not be shown."""
        known = self._cache.get(key)
        if known is not None:
            return known
        verdict = _judge(split_words(key), self._extra)
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                # Keys chosen by callers (tool arguments, headers) must not grow the cache forever.
                self._cache.clear()
            self._cache[key] = verdict
        return verdict
