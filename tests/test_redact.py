"""The redaction pipeline on its own: realistic secrets found, lookalikes left alone, payloads refused."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tenantgate.errors import InvalidInput
from tenantgate.logs import configure_logging, get_logger
from tenantgate.redact import (
    MIN_KNOWN_LENGTH,
    KnownSecrets,
    Redactor,
    SecretKeys,
    SecretRejected,
    Shape,
    ShapeDetector,
    marker,
)
from tests.redact_corpus import LOOKALIKE_OBJECTS, LOOKALIKE_TEXTS, SECRETS


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


# --- value shapes: positives and lookalikes -----------------------------------------------------


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: f"{s.rule}:{s.text[:14]}")
def test_every_realistic_secret_format_is_redacted(redactor: Redactor, secret: Any) -> None:
    alone = redactor.redact_text(secret.text)
    in_prose = redactor.redact_text(f"upstream replied ({secret.text}) and closed")
    in_data = redactor.redact({"note": secret.text, "items": [{"detail": f"got {secret.text}"}]})
    for result in (alone, in_prose, json.dumps(in_data)):
        assert secret.secret not in result
        assert marker(secret.rule) in result


def test_realistic_corpus_has_no_misses_and_names_the_rules(redactor: Redactor) -> None:
    missed = [s.rule for s in SECRETS if s.secret in redactor.redact_text(s.text)]
    rules = {s.rule for s in SECRETS}
    print(f"\nredaction: {len(SECRETS)} realistic secrets in {len(rules)} formats, missed {len(missed)}")
    assert missed == []
    assert len(SECRETS) >= 50
    assert len(rules) >= 25


def test_lookalikes_are_not_redacted_false_positive_count_is_zero(redactor: Redactor) -> None:
    texts = [t for t in LOOKALIKE_TEXTS if redactor.redact_text(t) != t]
    objects = [o for o in LOOKALIKE_OBJECTS if redactor.redact(o) != o]
    total = len(LOOKALIKE_TEXTS) + len(LOOKALIKE_OBJECTS)
    print(f"\nredaction: {total} lookalike non-secrets, false positives: {len(texts) + len(objects)}")
    assert texts == []
    assert objects == []


def test_only_the_secret_part_of_a_header_or_url_is_replaced(redactor: Redactor) -> None:
    assert redactor.redact_text("Authorization: Bearer abcdef0123456789XYZ") == (
        "Authorization: Bearer [redacted:bearer_token]"
    )
    assert redactor.redact_text("postgresql://app:S3cret-pw@db:5432/app") == (
        "postgresql://app:[redacted:url_password]@db:5432/app"
    )
    assert redactor.redact_text("password=hunter22 next") == "password=[redacted:secret_assignment] next"


def test_a_private_key_cut_short_is_redacted_to_the_end(redactor: Redactor) -> None:
    text = "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn"
    assert redactor.redact_text(text) == "key: [redacted:private_key]"


def test_a_token_glued_to_a_word_is_not_a_token(redactor: Redactor) -> None:
    body = "a1" * 18
    assert redactor.redact_text(f"xghp_{body}") == f"xghp_{body}"
    assert redactor.redact_text(f"(ghp_{body})") == "([redacted:github_token])"


# --- key names -----------------------------------------------------------------------------------

SECRET_KEYS = [
    "authorization", "Authorization", "Proxy-Authorization", "cookie", "Set-Cookie", "set_cookie", "password",
    "PASSWORD", "db_password", "smtpPassword", "passwd", "passphrase", "secret", "client_secret", "clientSecret",
    "webhook_secret", "token", "access_token", "accessToken", "refresh_token", "id_token", "X-Auth-Token",
    "api_key", "apiKey", "x-api-key", "X-API-KEY", "apikey", "private_key", "privateKey", "AWS_SECRET_ACCESS_KEY",
    "aws_access_key", "signing_key", "github_token", "session_token", "sessionId", "password_value", "jwt",
    "connection_string", "otp",
]  # fmt: skip
PLAIN_KEYS = [
    "tokenizer", "max_tokens", "token_count", "input_tokens", "token_type", "next_page_token", "pageToken",
    "password_policy", "password_min_length", "api_key_id", "secret_name", "secret_id", "credential_id",
    "credentials", "public_key", "key", "keys", "primary_key", "idempotency_key", "dedupe_key", "author",
    "auth_method", "expires_in", "scope", "status", "event", "passenger", "tokenomics", "secretary",
]  # fmt: skip


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_names_in_every_spelling(key: str) -> None:
    assert SecretKeys()(key)


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_keys_that_describe_or_point_at_secrets_are_not_secret(key: str) -> None:
    assert not SecretKeys()(key)


def test_key_names_redact_at_any_depth_and_keep_flags(redactor: Redactor) -> None:
    payload = {
        "request": {"headers": [{"Authorization": "opaque"}, {"Accept": "text/html"}]},
        "deep": {"a": {"b": {"c": [{"client_secret": {"nested": "object"}}]}}},
        "has_password": True,
        "password": None,
        "pin": 1234,
    }
    out = redactor.redact(payload)
    assert out["request"]["headers"] == [{"Authorization": "[redacted:key_name]"}, {"Accept": "text/html"}]
    assert out["deep"]["a"]["b"]["c"] == [{"client_secret": "[redacted:key_name]"}]
    assert (out["has_password"], out["password"], out["pin"]) == (True, None, "[redacted:key_name]")


def test_extra_key_names_are_matched_in_any_spelling() -> None:
    redactor = Redactor(keys=SecretKeys(extra=["license_code"]))
    assert redactor.redact({"LicenseCode": "ABCD-1234"}) == {"LicenseCode": "[redacted:key_name]"}


def test_input_is_never_modified_and_clean_data_comes_back_as_is(redactor: Redactor) -> None:
    clean = {"a": [1, "two", {"b": None}], "c": "plain text here"}
    dirty = {"keep": "x", "token": "abc123def456", "list": ("ghp_" + "a1" * 18, 2)}
    snapshot = json.dumps(dirty)
    assert redactor.redact(clean) is clean
    out = redactor.redact(dirty)
    assert json.dumps(dirty) == snapshot
    assert out == {"keep": "x", "token": "[redacted:key_name]", "list": ["[redacted:github_token]", 2]}


def test_absurd_nesting_is_cut_not_recursed_forever(redactor: Redactor) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    out = redactor.redact(loop)
    for _ in range(64):
        out = out["self"]
    assert out == "[redacted:too_deep]"


# --- known values --------------------------------------------------------------------------------


def test_known_values_are_redacted_exactly_anywhere(redactor: Redactor) -> None:
    redactor.known.add("plain-looking-pw")  # no recognisable shape
    redactor.known.add("short")  # too short: would redact ordinary words everywhere
    text = "login with plain-looking-pw failed; short words stay; url: https://x/?p=plain-looking-pw"
    assert redactor.redact_text(text) == (
        "login with [redacted:known_secret] failed; short words stay; url: https://x/?p=[redacted:known_secret]"
    )
    assert "short" not in redactor.known
    assert len("short") < MIN_KNOWN_LENGTH


def test_known_values_are_also_matched_percent_encoded_and_json_escaped(redactor: Redactor) -> None:
    value = 'p@ss w/"quote"'
    redactor.known.add(value)
    assert (
        redactor.redact_text("https://x/login?pw=p%40ss%20w%2F%22quote%22")
        == "https://x/login?pw=[redacted:known_secret]"
    )
    assert redactor.redact_text(json.dumps({"echo": value})) == '{"echo": "[redacted:known_secret]"}'


def test_a_longer_known_value_wins_over_one_it_contains(redactor: Redactor) -> None:
    redactor.known.add_all(["secret-part", "secret-part-and-more"])
    assert redactor.redact_text("x secret-part-and-more y") == "x [redacted:known_secret] y"


def test_known_secrets_are_thread_safe_under_concurrent_adds_and_matches() -> None:
    known = KnownSecrets()
    redactor = Redactor(known=known)
    values = [f"value-{i:05d}-secret" for i in range(400)]
    errors: list[BaseException] = []

    def add(chunk: list[str]) -> None:
        for v in chunk:
            known.add(v)

    def match() -> None:
        try:
            for v in values[:50]:
                redactor.redact_text(f"echo {v} back")
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(values[i::4],)) for i in range(4)]
    threads += [threading.Thread(target=match) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(redactor.redact_text(f"<{v}>") == "<[redacted:known_secret]>" for v in values)


# --- refusing secrets where they are forbidden ---------------------------------------------------


def test_reject_secrets_names_the_path_and_rule_never_the_value(redactor: Redactor) -> None:
    token = "ghp_" + "Zx9" * 12
    payload = {"order": 42, "contact": {"notes": ["ok", f"token is {token}"]}, "headers": {"Cookie": "a=b"}}
    with pytest.raises(SecretRejected) as caught:
        redactor.reject_secrets(payload, what="signal payload")
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert error.code == "secret_in_payload"
    assert error.fields == {"path": "$.contact.notes[1]", "rule": "github_token", "count": 2}
    assert "signal payload" in error.message
    assert "$.contact.notes[1]" in error.message
    assert token not in error.message
    assert token not in json.dumps(error.as_dict())


def test_reject_secrets_accepts_references_and_lookalikes(redactor: Redactor) -> None:
    payload = {
        "credential": "smtp-main",
        "credential_id": "7f0c6a1e-2b1d-4c55-9e2f-0a1b2c3d4e5f",
        "password_policy": True,
        "lookalikes": LOOKALIKE_TEXTS,
    }
    redactor.reject_secrets(payload)  # raises if anything in it looks secret


def test_reject_secrets_finds_a_secret_key_name_and_a_secret_in_a_key(redactor: Redactor) -> None:
    with pytest.raises(SecretRejected) as by_name:
        redactor.reject_secrets({"auth": {"refresh_token": "opaque-value"}})
    assert by_name.value.fields["path"] == "$.auth.refresh_token"
    assert by_name.value.fields["rule"] == "key_name"
    with pytest.raises(SecretRejected) as in_key:
        redactor.reject_secrets({"AKIAIOSFODNN7EXAMPLE": 1})
    assert in_key.value.fields["rule"] == "aws_access_key"


# --- the pipeline is plain callables --------------------------------------------------------------


def test_operators_can_add_their_own_detectors_and_shapes() -> None:
    def employee_ids(text: str) -> list[tuple[int, int, str]]:
        start = text.find("EMP-")
        return [] if start < 0 else [(start, start + 10, "employee_id")]

    acme = ShapeDetector([Shape("acme_key", ("acme_",), r"acme_[0-9a-f]{16}")])
    redactor = Redactor(detectors=(employee_ids, acme))
    assert redactor.redact_text("EMP-123456 used acme_0123456789abcdef") == (
        "[redacted:employee_id] used [redacted:acme_key]"
    )
    assert redactor.redact_text("ghp_" + "a1" * 18) == "ghp_" + "a1" * 18  # only the configured detectors run


# --- logs ------------------------------------------------------------------------------------------


def test_structured_logs_are_redacted_before_rendering(redactor: Redactor) -> None:
    stream = io.StringIO()
    token = "ghp_" + "b2" * 18
    redactor.known.add("vault-opened-value-42")
    configure_logging("info", stream=stream, redactor=redactor)
    try:
        log = get_logger("tenantgate.test")
        log.info(
            "calling upstream with Bearer abcdefghij0123456789",
            authorization="Basic dXNlcjpwYXNzd29yZA==",
            request={"headers": {"X-Api-Key": "k-123456789"}, "url": "https://u:pw-123456@h/x"},
            echoed="tool said vault-opened-value-42",
            obj=ValueError("boom sk_live_" + "a1" * 12),
        )
        try:
            raise RuntimeError(f"failed with token {token}")
        except RuntimeError:
            log.exception("upstream.failed")
    finally:
        configure_logging("warning")
    out = stream.getvalue()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    for leaked in ("abcdefghij0123456789", "dXNlcjpwYXNzd29yZA", "k-123456789", "pw-123456", "vault-opened",
                   "sk_live_", token):  # fmt: skip
        assert leaked not in out
    assert lines[0]["request"]["headers"]["X-Api-Key"] == "[redacted:key_name]"
    assert lines[0]["echoed"] == "tool said [redacted:known_secret]"
    assert "[redacted:github_token]" in lines[1]["exception"]


# --- properties ------------------------------------------------------------------------------------

_pieces = st.sampled_from([s.text for s in SECRETS[:12]] + LOOKALIKE_TEXTS[:12] + [" ", "\n", "x", "\x00", "é"])
_texts = st.lists(_pieces, max_size=6).map("".join)  # glued: the joined scan must still agree
# Secrets are found at word boundaries: in the leak property, pieces are separated as text separates them.
_separated = st.lists(st.tuples(_pieces, st.sampled_from([" ", "\n", ", ", "\x00", "/", "'"])), max_size=6).map(
    lambda parts: "".join(p + s for p, s in parts)
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _separated,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "note", "token", "x"]), inner),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(_texts, max_size=6))
def test_scanning_texts_together_finds_what_scanning_each_finds(texts: list[str]) -> None:
    # The fast path scans many texts joined in one pass; it must agree with one scan per text.
    redactor = Redactor()
    assert redactor.redact(texts) == [redactor.redact_text(t) for t in texts]


@settings(max_examples=150, deadline=None)
@given(value=_json)
def test_redaction_is_idempotent_and_leaves_no_known_secret(value: Any) -> None:
    redactor = Redactor()
    once = redactor.redact(value)
    assert redactor.redact(once) == once
    rendered = json.dumps(once)
    for s in SECRETS[:12]:
        assert s.secret not in rendered


def test_public_surface() -> None:
    import tenantgate.redact as redact

    assert set(redact.__all__) == {
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
    }
    assert all(hasattr(redact, name) for name in redact.__all__)


_everyday = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha256(b).hexdigest()),
    st.binary(min_size=1, max_size=64).map(lambda b: hashlib.sha1(b, usedforsecurity=False).hexdigest()),  # a git SHA
    st.datetimes().map(lambda d: d.isoformat()),
    st.integers().map(str),
    st.sampled_from(LOOKALIKE_TEXTS),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(values=st.lists(_everyday, min_size=1, max_size=8), joiner=st.sampled_from([" ", ", ", "\n", "/", " - "]))
def test_everyday_identifiers_are_never_redacted(values: list[str], joiner: str) -> None:
    redactor = Redactor()
    text = joiner.join(values)
    assert redactor.redact_text(text) == text
    assert redactor.redact({"ids": values, "line": text}) == {"ids": values, "line": text}
