"""The ``web`` package: ``web_fetch`` (a page as readable text) and ``web_search`` (Brave first).

Both reach outside only through ``call.http()``, so every request and redirect hop passes
the egress door with the tenant's domain lists. The fetched page is returned as text,
never logged; the raw body is kept as a private ``web_page`` artifact (unless the tenant's
compliance mode keeps no raw content) and the model gets its ``artifact_id``.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Protocol

import httpx
from pydantic import AnyHttpUrl, BaseModel, Field

from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool
from tenantgate.tools.builtin._html import html_to_text
from tenantgate.tools.builtin._provider import (
    ProviderUrls,
    ToolFailed,
    call_provider,
    error_message,
    json_or_text,
    parse_json,
    secret_field,
)

__all__ = ["BraveSearch", "SearchHit", "SearchProvider", "web_tools"]

_HTML = frozenset({"text/html", "application/xhtml+xml"})
_TEXT = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})


class FetchArgs(BaseModel):
    url: AnyHttpUrl = Field(description="An http(s) URL of a public page.")
    max_chars: int = Field(20_000, ge=100, le=200_000, description="Longest text to return.")


class FetchOut(BaseModel):
    url: str
    status: int
    content_type: str
    title: str | None
    text: str
    truncated: bool
    sha256: str = Field(description="Of the raw response body, as stored in the artifact.")
    bytes: int
    artifact_id: uuid.UUID | None = Field(
        description="The raw page kept as a private artifact; null where the tenant keeps no raw content."
    )


def _media_type(response: httpx.Response) -> str:
    header: str = response.headers.get("Content-Type", "")
    return header.partition(";")[0].strip().lower()


def _readable(media: str) -> str | None:
    """``'html'``, ``'text'`` or None for a media type web_fetch does not read."""
    if media in _HTML:
        return "html"
    if media in _TEXT or (media.startswith("application/") and media.endswith("+json")):
        return "text"
    return None


async def _fetch(call: ToolCall, args: FetchArgs) -> FetchOut:
    url = str(args.url)
    async with call.http() as client:
        response = await call_provider(
            client, "GET", url, provider=httpx.URL(url).host,
            explain=lambda r: r.reason_phrase or "no reason given",
            headers={"Accept": "text/html, application/xhtml+xml, text/plain;q=0.9, application/json;q=0.9"},
        )  # fmt: skip
        media = _media_type(response)
        kind = _readable(media)
        if kind is None:
            await response.aclose()
            raise ToolFailed(f"web_fetch reads HTML, plain text and JSON; {url} is {media or 'of no declared type'}.")
        raw = response.content
    text = response.text
    artifact_id = await call.store_artifact(raw, kind="web_page")
    title: str | None = None
    if kind == "html":
        title, text = html_to_text(text)
    return FetchOut(
        url=str(response.url),
        status=response.status_code,
        content_type=media,
        title=title,
        text=text[: args.max_chars],
        truncated=len(text) > args.max_chars,
        sha256=hashlib.sha256(raw).hexdigest(),
        bytes=len(raw),
        artifact_id=artifact_id,
    )


# --- search -----------------------------------------------------------------------------------


class SearchHit(BaseModel):
    title: str
    url: str
    description: str = ""


class SearchProvider(Protocol):
    """A web search API. ``credential`` is the tenant credential it needs (field ``api_key``)."""

    name: str
    credential: str

    async def search(self, call: ToolCall, query: str, count: int) -> list[SearchHit]: ...


class BraveSearch:
    """The Brave Search API: ``GET /res/v1/web/search`` with ``X-Subscription-Token``."""

    name = "Brave Search"
    credential = "brave_search"

    def __init__(self, base_url: str) -> None:
        self._url = base_url.rstrip("/") + "/res/v1/web/search"

    async def search(self, call: ToolCall, query: str, count: int) -> list[SearchHit]:
        key = secret_field(await call.credential(self.credential), "api_key", self.name)
        async with call.http() as client:
            response = await call_provider(
                client, "GET", self._url, provider=self.name, explain=_brave_error,
                params={"q": query, "count": count},
                headers={"Accept": "application/json", "X-Subscription-Token": key},
            )  # fmt: skip
            body = parse_json(response, self.name)
        return _brave_hits(body, self.name)[:count]


def _brave_error(response: httpx.Response) -> str:
    # {"type": "ErrorResponse", "error": {"id", "status", "code", "detail", "meta"}, "time"}
    body = json_or_text(response)
    code, detail = error_message(body, "error", "code"), error_message(body, "error", "detail")
    if code or detail:
        return f"{code}: {detail}" if code and detail else code or detail
    return body if isinstance(body, str) and body else response.reason_phrase


def _brave_hits(body: Any, provider: str) -> list[SearchHit]:
    if not isinstance(body, dict):
        raise ToolFailed(f"{provider} sent a response of an unexpected shape (not an object).")
    web = body.get("web")
    if web is None:
        return []  # Brave leaves out the web section when nothing matched
    results = web.get("results") if isinstance(web, dict) else None
    if not isinstance(results, list):
        raise ToolFailed(f"{provider} sent a response of an unexpected shape (web.results is not a list).")
    hits: list[SearchHit] = []
    for item in results:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and isinstance(item.get("title"), str):
            description = item.get("description")
            hits.append(
                SearchHit(
                    title=item["title"],
                    url=item["url"],
                    description=description if isinstance(description, str) else "",
                )
            )
    return hits


class SearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=400)
    count: int = Field(5, ge=1, le=10)


class SearchOut(BaseModel):
    provider: str
    query: str
    results: list[SearchHit]


def web_tools(urls: ProviderUrls, search: SearchProvider | None = None) -> list[Tool | ToolPackage]:
    """``web_fetch@v1``, ``web_search@v1`` and the ``web`` package."""
    provider: SearchProvider = search if search is not None else BraveSearch(urls.brave_search)

    @tool(
        "web_fetch@v1",
        description="Fetch a public web page and return it as readable text (HTML, plain text or JSON).",
        effect=ToolEffect.READ,
        capabilities={Capability.NET_EGRESS, Capability.ARTIFACTS},
        output=FetchOut,
        integration="web",
    )
    async def web_fetch(call: ToolCall, args: FetchArgs) -> FetchOut:
        return await _fetch(call, args)

    @tool(
        "web_search@v1",
        description="Search the web; returns titles, URLs and descriptions of the top results.",
        effect=ToolEffect.READ,
        capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS},
        output=SearchOut,
        integration="web",
    )
    async def web_search(call: ToolCall, args: SearchArgs) -> SearchOut:
        hits = await provider.search(call, args.query, args.count)
        return SearchOut(provider=provider.name, query=args.query, results=hits)

    package = ToolPackage("web", "Read public web pages and search the web.", (web_fetch.name, web_search.name))
    return [web_fetch, web_search, package]
