"""Brave Search API: ``GET /res/v1/web/search`` with ``X-Subscription-Token``, as Brave answers it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

HOST = "api.search.brave.test"
API_KEY = "BSA-fake-subscription-token"


def _error(status: int, code: str, detail: str, meta: dict[str, Any]) -> Reply:
    body = {
        "type": "ErrorResponse",
        "error": {"id": str(uuid.uuid4()), "status": status, "code": code, "detail": detail, "meta": meta},
        "time": int(time.time()),
    }
    return Reply(status, body)


def invalid_token() -> Reply:
    return _error(401, "SUBSCRIPTION_TOKEN_INVALID", "The provided subscription token is invalid.",
                  {"component": "authentication"})  # fmt: skip


def rate_limited() -> Reply:
    meta = {"plan": "Free", "rate_limit": 1, "rate_current": 2, "quota_limit": 2000, "quota_current": 17,
            "component": "rate_limiter"}  # fmt: skip
    reply = _error(429, "RATE_LIMITED", "Request rate limit exceeded for plan.", meta)
    return Reply(429, reply.body, {"X-RateLimit-Limit": "1, 2000", "X-RateLimit-Remaining": "0, 1983",
                                   "X-RateLimit-Reset": "1, 1419704"})  # fmt: skip


def result(title: str, url: str, description: str) -> dict[str, Any]:
    return {
        "title": title, "url": url, "is_source_local": False, "is_source_both": False,
        "description": description, "page_age": "2025-05-01T10:00:00", "language": "en",
        "family_friendly": True, "type": "search_result", "subtype": "generic",
        "meta_url": {"scheme": "https", "netloc": url.split("/")[2], "hostname": url.split("/")[2],
                     "favicon": "https://imgs.search.brave.com/x", "path": "> docs"},
    }  # fmt: skip


class FakeBrave:
    def __init__(self) -> None:
        self.server = FakeServer(self.handle)
        self.override: Reply | None = None  # answer every request with this instead
        self.results = [
            result("Tenant isolation - PostgreSQL docs", "https://www.postgresql.org/docs/current/ddl-rowsecurity.html",
                   "Row security policies restrict, on a per-user basis, which rows can be returned."),
            result("Row-level security explained", "https://example.com/rls", "An <strong>introduction</strong>."),
            result("Third", "https://example.org/3", "Third result."),
        ]  # fmt: skip

    async def handle(self, request: Request) -> Reply:
        if self.override is not None:
            return self.override
        if request.method != "GET" or request.path != "/res/v1/web/search":
            return Reply(404, {"type": "ErrorResponse", "error": {"status": 404, "code": "NOT_FOUND"}})
        if request.headers.get("x-subscription-token") != API_KEY:
            return invalid_token()
        query = request.query.get("q", [""])[0]
        count = int(request.query.get("count", ["20"])[0])
        body = {
            "type": "search",
            "query": {"original": query, "show_strict_warning": False, "is_navigational": False,
                      "local_decision": "drop", "country": "us", "more_results_available": True},
            "mixed": {"type": "mixed", "main": [{"type": "web", "index": 0, "all": False}], "top": [], "side": []},
            "web": {"type": "search", "results": self.results[:count], "family_friendly": True},
        }  # fmt: skip
        return Reply(200, body)
