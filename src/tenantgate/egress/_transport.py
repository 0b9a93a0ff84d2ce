"""The one door for outbound HTTP: an httpx transport that checks, resolves once and dials.

httpx's client sends every redirect hop back through its transport, so every hop is
checked here. For each request the transport checks scheme, port and host, resolves the
name once, refuses if any address is not public, and dials the first checked address by
rewriting the URL to it, keeping the name in the ``Host`` header and, through httpcore's
``sni_hostname`` extension, in TLS SNI and certificate verification. The response body
is capped in bytes, and the whole exchange, redirects included, in time.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Protocol

import httpx

from tenantgate.egress._addresses import IPAddress, check_address, deny
from tenantgate.egress._policy import EgressPolicy
from tenantgate.errors import EgressDenied

__all__ = ["EgressAudit", "EgressEvent", "Resolver", "SafeTransport", "SystemResolver", "safe_client"]

# Set on the request's extensions by the first hop; httpx hands the same dict to every
# redirect hop, so the time limit covers the whole exchange.
_DEADLINE = "tenantgate.egress_deadline"


class Resolver(Protocol):
    """Turns a host name into the addresses it would be dialled at."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver, through the running event loop."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: dict[IPAddress, None] = {}
        for *_, sockaddr in infos:
            if isinstance(sockaddr[0], str):
                # A scope id (fe80::1%eth0) is not part of the address; link-local is refused anyway.
                addresses[ip_address(sockaddr[0].partition("%")[0])] = None
        return list(addresses)


@dataclass(frozen=True)
class EgressEvent:
    """One decision of the transport, for the audit log: allowed, or refused by ``rule``."""

    url: str
    allowed: bool
    address: str | None = None
    rule: str | None = None


EgressAudit = Callable[[EgressEvent], None]


class SafeTransport(httpx.AsyncBaseTransport):
    """An httpx transport that dials only addresses the policy allows.

    ``dialer`` is the transport that actually connects (an ``httpx.AsyncHTTPTransport``
    without keep-alive by default: httpcore pools connections by the dialled address, and
    a TLS connection made for one name must never be reused for another).
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver | None = None,
        audit: EgressAudit | None = None,
        dialer: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = policy
        self._resolver: Resolver = resolver or SystemResolver()
        self._audit = audit
        self._dialer = dialer or httpx.AsyncHTTPTransport(
            trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url.copy_with(userinfo=b"")
        try:
            deadline = request.extensions.setdefault(_DEADLINE, _now() + self._policy.timeout_s)
            try:
                async with asyncio.timeout_at(deadline):
                    address, dial = await self._checked_request(request)
                    self._record(EgressEvent(str(url), allowed=True, address=str(address)))
                    response = await self._dialer.handle_async_request(dial)
            except TimeoutError:
                raise deny(f"{url.host} did not answer within {self._policy.timeout_s}s", "time-limit") from None
            return await self._capped(response, deadline)
        except EgressDenied as exc:
            self._record(EgressEvent(str(url), allowed=False, rule=exc.rule))
            raise

    async def aclose(self) -> None:
        await self._dialer.aclose()

    async def _checked_request(self, request: httpx.Request) -> tuple[IPAddress, httpx.Request]:
        url = request.url
        target, port = self._policy.check_target(url.scheme, url.raw_host.decode("ascii"), url.port)
        if isinstance(target, str):
            try:
                addresses = await self._resolver.resolve(target, port)
            except OSError as exc:
                raise httpx.ConnectError(f"cannot resolve {target}: {exc}", request=request) from exc
            if not addresses:
                raise httpx.ConnectError(f"{target} has no addresses", request=request)
        else:
            addresses = [target]
        for address in addresses:  # any bad address refuses the name, not just the one we pick
            check_address(address, allowed_private=self._policy.allowed_private)
        address = addresses[0]

        headers = request.headers.copy()
        _drop_url_credentials(headers, url)
        # The byte cap is on the wire; a compressed body could expand far past it when decoded.
        headers["Accept-Encoding"] = "identity"
        extensions = dict(request.extensions)
        if isinstance(target, str):
            extensions["sni_hostname"] = target
        dial = httpx.Request(
            request.method,
            url.copy_with(host=str(address), userinfo=b""),
            headers=headers,  # still carries the original Host header
            stream=request.stream,
            extensions=extensions,
        )
        return address, dial

    async def _capped(self, response: httpx.Response, deadline: float) -> httpx.Response:
        limit = self._policy.max_response_bytes
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        declared = response.headers.get("Content-Length", "")
        refusal: EgressDenied | None = None
        if encoding not in ("", "identity"):
            refusal = deny(f"response is {encoding}-encoded, which would uncap its size", "content-encoding")
        elif declared.isdigit() and int(declared) > limit:
            refusal = deny(f"response declares {declared} bytes, over the {limit}-byte cap", "response-too-large")
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        if refusal is not None:
            await stream.aclose()
            raise refusal
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(stream, limit=limit, deadline=deadline, timeout_s=self._policy.timeout_s),
            extensions=response.extensions,
        )

    def _record(self, event: EgressEvent) -> None:
        if self._audit is not None:
            self._audit(event)


class _CappedStream(httpx.AsyncByteStream):
    """A response body that refuses to grow past ``limit`` bytes or outlive ``deadline``."""

    def __init__(self, inner: httpx.AsyncByteStream, *, limit: int, deadline: float, timeout_s: float) -> None:
        self._inner = inner
        self._limit = limit
        self._deadline = deadline
        self._timeout_s = timeout_s

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._inner)
        received = 0
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise deny(f"response took longer than {self._timeout_s}s", "time-limit") from None
            received += len(chunk)
            if received > self._limit:
                raise deny(f"response is over the {self._limit}-byte cap", "response-too-large")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _drop_url_credentials(headers: httpx.Headers, url: httpx.URL) -> None:
    """Remove the Basic header httpx's client derives from ``user:pass@`` in the URL."""
    if not url.userinfo:
        return
    userpass = f"{url.username}:{url.password}".encode()
    derived = "Basic " + base64.b64encode(userpass).decode("ascii")
    if headers.get("Authorization") == derived:
        del headers["Authorization"]


def _now() -> float:
    return asyncio.get_running_loop().time()


def safe_client(
    policy: EgressPolicy,
    resolver: Resolver | None = None,
    audit: EgressAudit | None = None,
    *,
    dialer: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every request and redirect hop goes through :class:`SafeTransport`."""
    return httpx.AsyncClient(
        transport=SafeTransport(policy, resolver=resolver, audit=audit, dialer=dialer),
        follow_redirects=True,
        max_redirects=policy.max_redirects,
        timeout=httpx.Timeout(policy.timeout_s),
        # No proxies, netrc or SSL settings from the environment: a proxy mount would bypass the transport.
        trust_env=False,
    )
