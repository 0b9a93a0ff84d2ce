"""moto's S3 server on 127.0.0.1, fronted by S3's presigned-URL checks.

moto serves the S3 REST API (buckets, objects, server-side encryption headers, copy) but does
not check query-string signatures or expiry, which real S3 does. The front here verifies every
presigned request (one carrying ``X-Amz-Signature``) the way S3 does, from the SigV4 spec,
independently of botocore: canonical request, string to sign, the derived signing key, and the
expiry. A bad signature is answered ``403 SignatureDoesNotMatch``, an expired URL
``403 AccessDenied`` (Request has expired), both as S3's XML error document; everything else
passes to moto unchanged. A deleted or moved object is moto's own ``404 NoSuchKey``.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

__all__ = ["ACCESS_KEY", "SECRET_KEY", "FakeS3", "fake_s3"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # moto's conventional test credentials
_UNRESERVED = "-_.~"

StartResponse = Callable[..., Any]


@dataclass
class FakeS3:
    url: str
    presigned_refusals: list[str]  # the S3 error codes the front answered, in order
    clock_offset_s: float = 0.0  # how far ahead of real time the front judges expiry (no sleeping)

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _expected_signature(method: str, raw_path: str, params: list[tuple[str, str]], host: str) -> str:
    query = dict(params)
    signed_headers = query["X-Amz-SignedHeaders"]
    canonical_query = "&".join(
        f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}"
        for k, v in sorted(params)
        if k != "X-Amz-Signature"
    )
    # Browsers and httpx send only Host among the signed headers of a presigned GET.
    headers = {"host": host}
    canonical_headers = "".join(f"{h}:{headers[h]}\n" for h in signed_headers.split(";"))
    canonical_request = "\n".join(
        [method, raw_path, canonical_query, canonical_headers, signed_headers, "UNSIGNED-PAYLOAD"]
    )
    _, day, region, service, terminator = query["X-Amz-Credential"].split("/")
    scope = f"{day}/{region}/{service}/{terminator}"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            query["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{SECRET_KEY}".encode(), day)
    for part in (region, service, terminator):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _error(start_response: StartResponse, code: str, message: str) -> Iterable[bytes]:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    ).encode()
    start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


class _PresignedFront:
    def __init__(self, app: Any) -> None:
        self._app = app
        self.fake: FakeS3 | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        params = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query = dict(params)
        if "X-Amz-Signature" in query:
            refusal = self._check(environ, params, query)
            if refusal is not None:
                assert self.fake is not None
                self.fake.presigned_refusals.append(refusal[0])
                return _error(start_response, *refusal)
        return self._app(environ, start_response)  # type: ignore[no-any-return]

    def _check(
        self, environ: dict[str, Any], params: list[tuple[str, str]], query: dict[str, str]
    ) -> tuple[str, str] | None:
        try:
            raw_path = environ.get("RAW_URI", environ.get("REQUEST_URI", "")).split("?", 1)[0]
            expected = _expected_signature(environ["REQUEST_METHOD"], raw_path, params, environ["HTTP_HOST"])
            signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = int(query["X-Amz-Expires"])
            access_key = query["X-Amz-Credential"].split("/")[0]
        except (KeyError, ValueError):
            return ("AuthorizationQueryParametersError", "Query-string authentication requires X-Amz-* parameters.")
        if access_key != ACCESS_KEY:
            return ("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return ("SignatureDoesNotMatch", "The request signature we calculated does not match the signature.")
        if not 1 <= expires <= 604_800:
            return ("AuthorizationQueryParametersError", "X-Amz-Expires must be between 1 and 604800 seconds.")
        assert self.fake is not None
        if (self.fake.now() - signed_at).total_seconds() > expires:
            return ("AccessDenied", "Request has expired")
        return None


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # werkzeug would print every request to stderr


@contextmanager
def fake_s3() -> Iterator[FakeS3]:
    """moto's S3 behind the presigned-URL front, serving on a free port of 127.0.0.1."""
    app = _PresignedFront(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    app.fake = FakeS3(f"http://127.0.0.1:{server.server_address[1]}", [])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app.fake
    finally:
        server.shutdown()
        thread.join()
