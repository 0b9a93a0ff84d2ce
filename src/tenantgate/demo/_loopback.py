"""Test doubles for the egress door: a resolver table and a dialer that only ever reaches 127.0.0.1."""

from __future__ import annotations

from ipaddress import ip_address

import httpx

from tenantgate.egress import IPAddress

__all__ = ["HostTable", "LoopbackOnly"]


class HostTable:
    """Resolves the listed names (provider hosts like ``graph.facebook.test``); others fail like DNS."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [ip_address(self.table[host])]


class LoopbackOnly(httpx.AsyncBaseTransport):
    """Records each dial; refuses, failing the test, any address but 127.0.0.1."""

    def __init__(self, dialled: list[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))
        self.dialled = dialled

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.dialled.append(str(request.url))
        if request.url.host != "127.0.0.1":
            raise AssertionError(f"the egress door tried to dial {request.url.host}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
