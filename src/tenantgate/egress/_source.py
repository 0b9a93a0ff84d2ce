"""Outbound HTTP for tools: the platform's egress policy plus the tenant's own domain lists.

:class:`EgressHttp` is the installation's ``HttpSource``. Each tool call gets a fresh
client whose transport, on its first request, awaits the tenant's lists (from the
policy cache, through a callable: this package does not import ``gate``), then checks
every request and redirect hop against them before the platform's :class:`SafeTransport`
checks, resolves and dials. Every refusal is recorded as an ``egress.denied`` event in the
tenant's audit chain before the error reaches the tool.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import httpx

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.egress._addresses import check_host, deny
from tenantgate.egress._policy import EgressPolicy, validate_domain_pattern
from tenantgate.egress._transport import Resolver, SafeTransport
from tenantgate.errors import EgressDenied
from tenantgate.logs import get_logger

__all__ = ["DomainLists", "EgressHttp", "ListsLoader", "redacted_url"]

_log = get_logger("tenantgate.egress")


@dataclass(frozen=True, slots=True)
class DomainLists:
    """A tenant's domain lists: exact hosts or ``*.suffix``. Deny wins; a non-empty allow list is exhaustive."""

    allow: frozenset[str] = field(default_factory=frozenset)
    deny: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for pattern in self.allow | self.deny:
            validate_domain_pattern(pattern)

    def check(self, host: str) -> None:
        """Raise :class:`EgressDenied` naming the tenant's rule (and pattern) that refuses ``host``."""
        name = str(check_host(host))
        denied = _first_match(name, self.deny)
        if denied is not None:
            raise deny(f"{name} matches {denied!r} on the tenant's domain denylist", "tenant-domain-denied")
        if self.allow and _first_match(name, self.allow) is None:
            raise deny(f"{name} is not on the tenant's domain allowlist", "tenant-domain-not-allowed")


ListsLoader = Callable[[TenantContext], Awaitable[DomainLists]]


def _first_match(name: str, patterns: Iterable[str]) -> str | None:
    for pattern in sorted(patterns):  # sorted: the same rule is named every time
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return pattern
        if name == pattern:
            return pattern
    return None


def redacted_url(url: httpx.URL) -> str:
    """``url`` fit for an audit record: no user info, no fragment, query values replaced."""
    query = parse_qsl(url.query.decode("ascii", "replace"), keep_blank_values=True)
    clean = url.copy_with(userinfo=b"", fragment=None, query=None)
    if not query:
        return str(clean)
    # Keys show what was asked; values may be tokens (?key=..., ?sig=...), so none is kept.
    return f"{clean}?{urlencode([(key, 'redacted') for key, _ in query])}"


class _TenantTransport(httpx.AsyncBaseTransport):
    """The tenant's lists, then the platform door; every refusal audited before it is raised."""

    def __init__(
        self,
        inner: SafeTransport,
        *,
        ctx: TenantContext,
        tool: str,
        call_id: uuid.UUID,
        lists: ListsLoader | None,
        audit: AuditLog | None,
    ) -> None:
        self._inner = inner
        self._ctx = ctx
        self._tool = tool
        self._call_id = call_id
        self._loader = lists
        self._lists: DomainLists | None = None
        self._audit = audit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            if self._lists is None:
                # Loaded once per client (one tool call): a policy change applies from the next call.
                self._lists = await self._loader(self._ctx) if self._loader is not None else DomainLists()
            self._lists.check(request.url.raw_host.decode("ascii", "replace"))
            response = await self._inner.handle_async_request(request)
        except EgressDenied as exc:
            await self._refused(request.url, exc)
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        # The size and time caps can also refuse while the body is read: audit those too.
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_AuditedStream(stream, self, request.url),
            extensions=response.extensions,
        )

    async def _refused(self, url: httpx.URL, exc: EgressDenied) -> None:
        shown = redacted_url(url)
        _log.info("egress.denied", tool=self._tool, call_id=str(self._call_id), url=shown, rule=exc.rule)
        if self._audit is None:
            return
        event = AuditEvent(
            action="egress.denied",
            decision="deny",
            code=exc.code,
            tool=self._tool,
            payload={"call_id": str(self._call_id), "url": shown, "rule": exc.rule},
        )
        # Durable before the tool sees the error: a refusal is never lost to a crash after it.
        await self._audit.record(self._ctx, event)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _AuditedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, transport: _TenantTransport, url: httpx.URL) -> None:
        self._inner = inner
        self._transport = transport
        self._url = url

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except EgressDenied as exc:
            await self._transport._refused(self._url, exc)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


class EgressHttp:
    """The tools' ``HttpSource``: per-call clients through the egress door with the tenant's lists.

    ``lists`` returns the tenant's domain lists (the installation passes one reading the
    policy cache; it raises, failing closed, when policy state is unavailable). ``resolver``
    and ``dialer`` are for tests: a fake resolver, and a dialer that only reaches loopback.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        lists: ListsLoader | None = None,
        audit: AuditLog | None = None,
        resolver: Resolver | None = None,
        dialer: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.policy = policy
        self._lists = lists
        self._audit = audit
        self._resolver = resolver
        if dialer is None:
            # One TLS context for every call's dialer: building one loads the CA bundle (~0.1 s),
            # which per tool call would cost more than the request. Connections are still never
            # shared: each dialer is closed with its client, and keeps none alive meanwhile.
            tls = httpx.create_ssl_context(trust_env=False)

            def dialer() -> httpx.AsyncBaseTransport:
                return httpx.AsyncHTTPTransport(
                    verify=tls, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
                )

        self._dialer = dialer

    def client(self, ctx: TenantContext, *, tool: str, call_id: uuid.UUID) -> httpx.AsyncClient:
        """A client for one tool call. Use it as ``async with call.http() as client:``."""
        inner = SafeTransport(self.policy, resolver=self._resolver, dialer=self._dialer())
        transport = _TenantTransport(inner, ctx=ctx, tool=tool, call_id=call_id, lists=self._lists, audit=self._audit)
        return httpx.AsyncClient(
            transport=transport,
            follow_redirects=True,
            max_redirects=self.policy.max_redirects,
            timeout=httpx.Timeout(self.policy.timeout_s),
            # No proxies, netrc or SSL settings from the environment: a proxy mount would bypass the transport.
            trust_env=False,
        )
