"""One redaction pipeline for logs, audit payloads, confirmations, tool output, signals and directives.

Secrets are found three ways: by key name (``authorization``, ``client_secret``, ... at any
depth, any spelling), by value shape (cloud, Git host, chat, payment and LLM provider
tokens, JWTs, PEM private keys, bearer and basic credentials, URLs with a password,
tenantgate's own ``tg_``/``tgp_`` keys, webhook secrets) and by known value (every
credential opened in the process, registered with ``redactor.known.add(value)``).
"""

from tenantgate.errors import SecretRejected
from tenantgate.redact._keys import SecretKeys, split_words
from tenantgate.redact._known import MIN_KNOWN_LENGTH, KnownSecrets
from tenantgate.redact._redactor import KEY_RULE, Detector, Finding, Redactor, Span, marker
from tenantgate.redact._shapes import DEFAULT_SHAPES, Shape, ShapeDetector

__all__ = [
    "DEFAULT_SHAPES",
    "KEY_RULE",
    "MIN_KNOWN_LENGTH",
    "Detector",
    "Finding",
    "KnownSecrets",
    "Redactor",
    "SecretKeys",
    "SecretRejected",
    "Shape",
    "ShapeDetector",
    "Span",
    "marker",
    "split_words",
]
