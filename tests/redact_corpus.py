"""Realistic secrets and realistic lookalikes, shared by the redaction tests and the benchmark.

Every secret is fake but has the exact shape of the real thing (prefix, alphabet, length);
the bodies come from a seeded generator, so the corpus is the same on every run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from dataclasses import dataclass
from typing import Any

from tenantgate.auth import KeyKind, generate_key

_rng = random.Random(20261130)
_ALNUM = string.ascii_letters + string.digits
_B64URL = _ALNUM + "-_"


def _body(n: int, alphabet: str = _ALNUM) -> str:
    # A machine-made body always mixes letters and digits; make sure of it for short ones.
    while True:
        text = "".join(_rng.choice(alphabet) for _ in range(n))
        if any(c.isdigit() for c in text) and any(c.isalpha() for c in text):
            return text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt() -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"sub": "1234567890", "tenant_id": str(uuid.UUID(int=7)), "exp": 1893456000}).encode())
    return f"{header}.{claims}.{_b64(hashlib.sha256(b'sig').digest())}"


def _pem(kind: str) -> str:
    label = f"{kind} PRIVATE KEY" if kind else "PRIVATE KEY"
    lines = [_body(64, _ALNUM + "+/") for _ in range(4)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"


@dataclass(frozen=True)
class Secret:
    rule: str  # the rule expected to find it
    text: str  # the text as it would appear (a header line, a URL, a bare token)
    secret: str  # the part that must disappear


def _secrets() -> list[Secret]:
    tg = generate_key(KeyKind.TENANT).value
    tgp = generate_key(KeyKind.PLATFORM).value
    jwt = _jwt()
    basic = base64.b64encode(b"admin:s3cret!pass").decode()
    items = [
        ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
        ("aws_access_key", "ASIA" + _body(16, string.ascii_uppercase + string.digits)),
        ("github_token", "ghp_" + _body(36)),
        ("github_token", "gho_" + _body(36)),
        ("github_token", "ghs_" + _body(36)),
        ("github_token", "github_pat_11" + _body(20) + "_" + _body(59)),
        ("gitlab_token", "glpat-" + _body(20, _B64URL)),
        ("gitlab_token", "glrt-" + _body(20, _B64URL)),
        ("slack_token", f"xoxb-{_rng.randrange(10**11, 10**12)}-{_rng.randrange(10**12, 10**13)}-{_body(24)}"),
        ("slack_token", f"xoxp-{_rng.randrange(10**11, 10**12)}-{_rng.randrange(10**11, 10**12)}-{_body(32)}"),
        ("slack_webhook", f"https://hooks.slack.com/services/T{_body(8)}/B{_body(10)}/{_body(24)}"),
        ("discord_webhook", f"https://discord.com/api/webhooks/{_rng.randrange(10**17, 10**18)}/{_body(68, _B64URL)}"),
        ("stripe_key", "sk_live_" + _body(24)),
        ("stripe_key", "rk_test_" + _body(99)),
        ("webhook_secret", "whsec_" + _body(32)),
        ("openai_key", "sk-proj-" + _body(156, _B64URL)),
        ("openai_key", "sk-" + _body(48)),
        ("anthropic_key", "sk-ant-api03-" + _body(93, _B64URL) + "AA"),
        ("google_api_key", "AIza" + _body(35, _B64URL)),
        ("google_oauth_token", "ya29.a0" + _body(150, _B64URL)),
        ("google_oauth_token", "1//0g" + _body(100, _B64URL)),
        ("google_client_secret", "GOCSPX-" + _body(28, _B64URL)),
        ("huggingface_token", "hf_" + _body(34)),
        ("npm_token", "npm_" + _body(36)),
        ("pypi_token", "pypi-AgEIcHlwaS5vcmc" + _body(60, _B64URL)),
        ("sendgrid_key", "SG." + _body(22, _B64URL) + "." + _body(43, _B64URL)),
        ("tenantgate_key", tg),
        ("tenantgate_key", tgp),
        ("jwt", jwt),
        ("private_key", _pem("RSA")),
        ("private_key", _pem("EC")),
        ("private_key", _pem("OPENSSH")),
        ("private_key", _pem("")),
        ("private_key", _pem("ENCRYPTED")),
    ]
    found = [Secret(rule, value, value) for rule, value in items]
    bearer = _body(40, _B64URL)
    found += [
        Secret("bearer_token", f"Authorization: Bearer {bearer}", bearer),
        Secret("bearer_token", f"authorization: bearer {jwt}", jwt),
        Secret("bearer_token", f"curl -H 'Authorization: Bearer {tg}' https://api.example.com", tg),
        Secret("tenantgate_key", f"export TENANTGATE_KEY={tg}", tg),
        Secret("basic_auth", f"Authorization: Basic {basic}", basic),
        Secret("url_password", "postgresql://app:Sup3r-S3cret@db.internal:5432/app", "Sup3r-S3cret"),
        Secret("url_password", "redis://:p4ssw0rd-x@cache:6379/0", "p4ssw0rd-x"),
        Secret("url_password", "https://deploy:pa%40ss%21word@git.example.com/acme/app.git", "pa%40ss%21word"),
        Secret("url_password", "amqp://guest:guestpass1@rabbit:5672/", "guestpass1"),
        Secret("secret_assignment", "password=hunter22", "hunter22"),
        Secret("secret_assignment", 'DB_PASSWORD="c0rrect-h0rse-battery"', "c0rrect-h0rse-battery"),
        Secret("secret_assignment", "api_key: 9f8e7d6c5b4a3f2e", "9f8e7d6c5b4a3f2e"),
        Secret("secret_assignment", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        Secret("secret_assignment", '{"client_secret": "Xq3-vLp9_ZtR2mWk"}', "Xq3-vLp9_ZtR2mWk"),
        Secret("secret_assignment", "https://api.example.com/v1/items?api_key=Zk81mQp0Lr2x&page=2", "Zk81mQp0Lr2x"),
        Secret("cookie_header", "Cookie: sessionid=8f2b9c0e1d; csrftoken=Qe4rT5y6U7", "sessionid=8f2b9c0e1d"),
        Secret("cookie_header", "Set-Cookie: sid=s%3Aab12cd34.ef56; Path=/; HttpOnly", "s%3Aab12cd34.ef56"),
    ]
    return found


SECRETS: list[Secret] = _secrets()


def _image() -> str:
    data = bytes(_rng.randrange(256) for _ in range(3000))
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _lookalike_texts() -> list[str]:
    hexes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5)]
    return [
        *(str(uuid.UUID(int=_rng.getrandbits(128), version=4)) for _ in range(5)),
        uuid.UUID(int=_rng.getrandbits(128), version=4).hex,
        "3108f4b2c9e1a7d05f6b8e2c4a9d7f1e3b5c8a0d",  # a git commit SHA
        "3108f4b",
        *hexes,  # sha256 hex digests
        "sha256:" + hexes[0],
        _image(),
        base64.b64encode(json.dumps({"a": 1, "page": 2}).encode()).decode(),  # a base64 JSON cursor, not a JWT
        "eyJwYWdlIjoyLCJzaXplIjo1MH0",
        "The tokenizer splits text into tokens; max_tokens caps the reply.",
        "Tokenization of the input failed at position 12.",
        "The password must be at least 12 characters long.",
        "Password: required",
        "Reset your password: follow the link we sent.",
        "secret: true",
        "token_count=42 input_tokens=1234 output_tokens=567",
        "The bearer of this letter is a friend.",
        "Bearer token required for this endpoint.",
        "Basic instructions for setting up the workspace.",
        "Basic authentication is disabled on this server.",
        "https://example.com/path?q=1&page=2",
        "https://api.github.com/repos/acme/app/pulls/42",
        "https://medium.com/@alice/how-to-rotate-keys-1a2b3c4d",
        "http://localhost:8000/v1/whoami",
        "https://example.com:8443/health",
        "postgresql://db.internal:5432/app",
        "ssh://git@github.com/acme/app.git",
        "https://user@example.com/profile",
        "mailto:alice@example.com",
        "alice.smith+billing@example.co.uk",
        "+4930123456",
        "+1 (415) 555-0132",
        "2026-11-30T11:37:59.123456Z",
        "Mon, 30 Nov 2026 11:37:59 GMT",
        "192.0.2.10:8080",
        "2001:db8::8a2e:370:7334",
        "/var/lib/tenantgate/data/pg_wal/000000010000000000000001",
        "python-httpx/0.27.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "arn:aws:iam::123456789012:role/tenantgate-app",
        "pk_live_" + _body(24),  # Stripe publishable keys are public by design
        "tg_" + _body(12, string.ascii_lowercase + string.digits),  # a key's public prefix, as listings show it
        "C024BE91L",
        "cl100k_base",
        "scikit-learn==1.5.2",
        "risk-assessment-procedures-2024-final",
        "task-manager-service-7d9f8b6c5-x2k4p",  # a Kubernetes pod name
        "Sheet1!A1:D10",
        "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms",  # a Google Sheets id
        "The sk-8 park opens at 9; secret menu items are listed below.",
        "Send the token to the API and it returns a new session.",
    ]


def _lookalike_objects() -> list[Any]:
    return [
        {"password_policy": True, "password_min_length": 12, "has_password": True, "password_set": False},
        {"token_type": "Bearer", "expires_in": 3600, "scope": "read write"},
        {"max_tokens": 512, "tokenizer": "cl100k_base", "token_count": 17, "input_tokens": 10},
        {"api_key_id": str(uuid.UUID(int=3)), "secret_name": "smtp", "credential_id": str(uuid.UUID(int=4))},
        {"next_page_token": "CAEQAA", "page_token": None, "auth_method": "oauth", "public_key": "ssh-ed25519 AAAAC3"},
        {"password": None, "secret": "", "token": False},  # nothing to hide under a secret name
        {"headers": {"Content-Type": "application/json", "Accept": "*/*", "User-Agent": "tenantgate/0.1"}},
        {"tool": "sheets_read@v1", "args_digest": hashlib.sha256(b"x").hexdigest(), "call_id": str(uuid.UUID(int=5))},
    ]


LOOKALIKE_TEXTS: list[str] = _lookalike_texts()
LOOKALIKE_OBJECTS: list[Any] = _lookalike_objects()


def log_lines(count: int, *, with_secret_every: int = 25) -> list[dict[str, Any]]:
    """Realistic structured log events (the benchmark's input); every n-th carries a secret."""
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    for i in range(count):
        event: dict[str, Any] = {
            "event": rng.choice(["http.request", "tool.executed", "gate.decided", "auth.ok"]),
            "level": "info",
            "timestamp": f"2026-11-30T11:{i % 60:02d}:{(i * 7) % 60:02d}.{i:06d}Z",
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "tenant_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "principal_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "method": "POST",
            "path": "/v1/tools/sheets_read@v1/call",
            "status": rng.choice([200, 200, 200, 403, 422]),
            "duration_ms": round(rng.random() * 120, 2),
            "user_agent": "python-httpx/0.27.0",
            "message": "tool call finished; the planner proposed a follow-up about the quarterly report",
            "tool": "sheets_read@v1",
            "args": {"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms", "range": "Sheet1!A1:D10"},
        }
        if i % with_secret_every == 0:
            secret = SECRETS[i % len(SECRETS)]
            event["detail"] = f"upstream said: {secret.text}"
        events.append(event)
    return events
