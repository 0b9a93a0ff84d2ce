"""The egress transport against a real loopback HTTP server and a fake resolver.

No test ever dials anything but 127.0.0.1: the transport's dialer here is ``LoopbackOnly``,
which records every dial and fails the test on any other address. Refusals are shown to
happen before any connection by the server's record of arrivals staying empty.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import tenantgate.egress as egress
from tenantgate.egress import (
    EgressEvent,
    EgressPolicy,
    IPAddress,
    SystemResolver,
    check_address,
    safe_client,
)
from tenantgate.errors import ConfigurationError, EgressDenied

LOOPBACK = frozenset({ip_network("127.0.0.1/32")})


# --- a minimal HTTP/1.1 server on 127.0.0.1 ---------------------------------------------


@dataclass
class Arrival:
    method: str
    target: str
    headers: dict[str, str]


@dataclass
class LoopbackServer:
    arrivals: list[Arrival] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with suppress(asyncio.CancelledError):
                await task
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def url(self, path: str, host: str = "public.test") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            self.arrivals.append(Arrival(method, target, headers))
            await self._respond(target, headers, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _respond(self, target: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)

        def head(status: str, extra: Iterable[tuple[str, str]] = ()) -> None:
            lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in extra)]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

        if path == "/ok":
            head("200 OK", [("Content-Length", "5")])
            writer.write(b"hello")
        elif path == "/echo":
            body = json.dumps(headers).encode()
            head("200 OK", [("Content-Length", str(len(body)))])
            writer.write(body)
        elif path == "/redirect":
            head("302 Found", [("Location", query["to"][0]), ("Content-Length", "0")])
        elif path == "/loop":
            head("302 Found", [("Location", "/loop"), ("Content-Length", "0")])
        elif path.startswith("/big/"):  # no Content-Length: only reading tells the size
            head("200 OK")
            remaining = int(path.removeprefix("/big/"))
            while remaining > 0:
                writer.write(b"x" * min(remaining, 1024))
                remaining -= 1024
                await writer.drain()
        elif path.startswith("/declared/"):
            size = int(path.removeprefix("/declared/"))
            head("200 OK", [("Content-Length", str(size))])
            writer.write(b"x" * size)
        elif path == "/gzip":
            body = gzip.compress(b"x" * 10_000)
            head("200 OK", [("Content-Encoding", "gzip"), ("Content-Length", str(len(body)))])
            writer.write(body)
        elif path == "/drip":  # each byte arrives well within a read timeout; the whole never does
            head("200 OK")
            for _ in range(200):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
        elif path == "/stall":
            await asyncio.sleep(30)
        await writer.drain()


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    srv = LoopbackServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


# --- test doubles: a resolver table and a dialer that only reaches loopback --------------


class FakeResolver:
    """Maps names to addresses; unknown names fail like a real lookup would."""

    def __init__(self, table: dict[str, list[str]] | None = None, default: list[str] | None = None) -> None:
        self.table = table or {}
        self.default = default
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        addresses = self.table.get(host, self.default)
        if addresses is None:
            raise OSError(f"no such host {host}")
        return [ip_address(a) for a in addresses]


class RebindingResolver(FakeResolver):
    """Answers loopback the first time and a private address ever after."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        return [ip_address("127.0.0.1" if len(self.calls) == 1 else "10.0.0.1")]


@dataclass(frozen=True)
class Dial:
    host: str
    port: int | None
    sni_hostname: str | None
    host_header: str
    url: str


class LoopbackOnly(httpx.AsyncBaseTransport):
    """The dialer under test: records each dial and refuses, loudly, anything but 127.0.0.1."""

    def __init__(self, *, canned: bool = False) -> None:
        self.inner = httpx.AsyncHTTPTransport(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))
        self.canned = canned
        self.dialled: list[Dial] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        self.dialled.append(
            Dial(url.host, url.port, request.extensions.get("sni_hostname"), request.headers["Host"], str(url))
        )
        if url.host != "127.0.0.1":
            raise AssertionError(f"the transport tried to dial {url.host}")
        if self.canned:
            return httpx.Response(204)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def policy_for(srv: LoopbackServer, **options: object) -> EgressPolicy:
    options.setdefault("allowed_ports", frozenset({srv.port}))
    return EgressPolicy(**options)  # type: ignore[arg-type]  # test options are typed by the caller


# --- the address table: every special-purpose range and embedded form ---------------------

REFUSED_ADDRESSES = [
    # IPv4 special-purpose ranges
    ("0.0.0.0", "this-network"),  # noqa: S104  # an address under test, never bound
    ("0.1.2.3", "this-network"),
    ("10.0.0.5", "private-address"),
    ("100.64.0.1", "shared-address"),
    ("100.127.255.254", "shared-address"),
    ("100.100.100.200", "cloud-metadata"),
    ("127.0.0.1", "loopback-address"),
    ("127.255.255.254", "loopback-address"),
    ("169.254.0.1", "link-local-address"),
    ("169.254.169.254", "cloud-metadata"),
    ("169.254.170.2", "cloud-metadata"),
    ("168.63.129.16", "cloud-metadata"),
    ("172.16.0.1", "private-address"),
    ("172.31.255.255", "private-address"),
    ("192.0.0.8", "protocol-assignment"),
    ("192.0.0.192", "cloud-metadata"),
    ("192.0.2.1", "documentation-address"),
    ("192.88.99.1", "reserved-address"),
    ("192.168.1.1", "private-address"),
    ("198.18.0.1", "benchmarking-address"),
    ("198.19.255.255", "benchmarking-address"),
    ("198.51.100.7", "documentation-address"),
    ("203.0.113.9", "documentation-address"),
    ("224.0.0.1", "multicast-address"),
    ("239.255.255.250", "multicast-address"),
    ("240.0.0.1", "reserved-address"),
    ("255.255.255.255", "reserved-address"),
    # IPv6 special-purpose ranges
    ("::", "unspecified-address"),
    ("::1", "loopback-address"),
    ("100::1", "discard-address"),
    ("2001:2::1", "benchmarking-address"),
    ("2001:db8::1", "documentation-address"),
    ("3fff::1", "documentation-address"),
    ("2001:10::1", "protocol-assignment"),
    ("5f00::1", "reserved-address"),
    ("fc00::1", "private-address"),
    ("fd12:3456::1", "private-address"),
    ("fd00:ec2::254", "cloud-metadata"),
    ("fe80::1", "link-local-address"),
    ("fec0::1", "site-local-address"),
    ("ff02::1", "multicast-address"),
    ("4000::1", "reserved-address"),
    # IPv6 forms that embed IPv4, judged by what they embed
    ("::ffff:127.0.0.1", "loopback-address"),
    ("::ffff:10.0.0.1", "private-address"),
    ("::ffff:100.64.0.1", "shared-address"),
    ("::ffff:169.254.169.254", "cloud-metadata"),
    ("::127.0.0.1", "loopback-address"),
    ("::10.0.0.1", "private-address"),
    ("::0.0.0.2", "this-network"),
    ("64:ff9b::127.0.0.1", "loopback-address"),
    ("64:ff9b::192.168.0.1", "private-address"),
    ("64:ff9b::169.254.169.254", "cloud-metadata"),
    ("64:ff9b:1::a00:1", "nat64-local"),
    ("64:ff9b:1::808:808", "nat64-local"),
    ("2002:7f00:1::1", "loopback-address"),
    ("2002:a00:1::1", "private-address"),
    ("2002:a9fe:a9fe::1", "cloud-metadata"),
    ("2001:0:808:808::80ff:fffe", "loopback-address"),  # Teredo client 127.0.0.1
    ("2001:0:a00:1::fefe:fefe", "private-address"),  # Teredo server 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "documentation-address"),  # client 192.0.2.45
]

PUBLIC_ADDRESSES = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
    "2001:0:808:808::fefe:fefe",  # Teredo, server 8.8.8.8, client 1.1.1.1
]


@pytest.mark.parametrize(("address", "rule"), REFUSED_ADDRESSES)
async def test_a_name_resolving_to_a_forbidden_address_is_refused_before_any_dial(
    server: LoopbackServer, address: str, rule: str
) -> None:
    resolver = FakeResolver({"public.test": [address]})
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server), resolver, dialer=dialer) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get(server.url("/ok"))
    assert refused.value.rule == rule
    assert refused.value.code == "egress_denied"
    assert f"(rule: {rule})" in refused.value.message
    assert dialled_nothing(server, dialer)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_pass(address: str) -> None:
    check_address(ip_address(address))


def test_refusal_message_names_the_rule() -> None:
    with pytest.raises(EgressDenied) as refused:
        check_address(ip_address("10.0.0.5"))
    assert str(refused.value) == "egress_denied: 10.0.0.5 is private (rule: private-address)"
    assert refused.value.as_dict()["rule"] == "private-address"
    with pytest.raises(EgressDenied, match=r"::ffff:a00:1 embeds 10\.0\.0\.1, which is private"):
        check_address(ip_address("::ffff:10.0.0.1"))


def test_allowed_private_networks_open_exactly_those_addresses() -> None:
    tens = frozenset({ip_network("10.0.0.0/8")})
    check_address(ip_address("10.1.2.3"), allowed_private=tens)
    check_address(ip_address("::ffff:10.1.2.3"), allowed_private=tens)
    with pytest.raises(EgressDenied, match="private-address"):
        check_address(ip_address("192.168.0.1"), allowed_private=tens)
    with pytest.raises(EgressDenied, match="cloud-metadata"):  # metadata is never opened
        check_address(ip_address("169.254.169.254"), allowed_private=frozenset({ip_network("169.254.0.0/16")}))


async def test_loopback_server_is_not_reached_when_loopback_is_not_allowed(server: LoopbackServer) -> None:
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server), FakeResolver({"public.test": ["127.0.0.1"]}), dialer=dialer) as client:
        with pytest.raises(EgressDenied, match="loopback-address"):
            await client.get(server.url("/ok"))
    assert dialled_nothing(server, dialer)


async def test_one_bad_address_refuses_the_name(server: LoopbackServer) -> None:
    resolver = FakeResolver({"public.test": ["127.0.0.1", "10.0.0.1"]})
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, dialer=dialer) as client:
        with pytest.raises(EgressDenied, match="private-address"):
            await client.get(server.url("/ok"))
    assert dialled_nothing(server, dialer)


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("127.0.0.1", "loopback-address"),
        ("0.0.0.0", "this-network"),  # noqa: S104  # an address under test, never bound  # noqa: S104  # an address under test, never bound
        ("[::1]", "loopback-address"),
        ("[::ffff:127.0.0.1]", "loopback-address"),
        ("[::ffff:7f00:1]", "loopback-address"),
        ("[64:ff9b::7f00:1]", "loopback-address"),
        ("[2002:7f00:1::]", "loopback-address"),
        ("[fd00:ec2::254]", "cloud-metadata"),
    ],
)
async def test_ip_literal_urls_are_judged_without_resolving(server: LoopbackServer, host: str, rule: str) -> None:
    resolver = FakeResolver(default=["127.0.0.1"])
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server), resolver, dialer=dialer) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get(server.url("/ok", host=host))
    assert refused.value.rule == rule
    assert resolver.calls == []
    assert dialled_nothing(server, dialer)


@pytest.mark.parametrize(
    ("host", "rule"),
    [
        ("2130706433", "numeric-host"),
        ("0x7f.1", "numeric-host"),
        ("127.1", "numeric-host"),
        ("0x7f000001", "numeric-host"),
        ("017700000001", "numeric-host"),
        ("127.0.0.1.", "numeric-host"),
        ("0x7f.0x0.0x0.0x1", "numeric-host"),
        ("%31%32%37.0.0.1", "invalid-host"),
        ("ex%41mple.test", "invalid-host"),
        ("under_score.test", "invalid-host"),
        ("a..b.test", "invalid-host"),
        ("[fe80::1%25eth0]", "invalid-host"),
    ],
)
async def test_ambiguous_host_strings_are_refused_before_resolving(
    server: LoopbackServer, host: str, rule: str
) -> None:
    # Loopback is allowed and every name resolves to it: only the host check stands in the way.
    resolver = FakeResolver(default=["127.0.0.1"])
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, dialer=dialer) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get(server.url("/ok", host=host))
    assert refused.value.rule == rule
    assert resolver.calls == []
    assert dialled_nothing(server, dialer)


async def test_leading_zero_octets_never_reach_the_transport(server: LoopbackServer) -> None:
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), FakeResolver(), dialer=dialer) as client:
        with pytest.raises(httpx.InvalidURL):  # httpx itself rejects 0177.0.0.1
            await client.get(server.url("/ok", host="0177.0.0.1"))
    assert dialled_nothing(server, dialer)


async def test_backslash_before_at_is_judged_by_the_host_that_would_be_dialled(server: LoopbackServer) -> None:
    resolver = FakeResolver({"public.test": ["8.8.8.8"]})
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server), resolver, dialer=dialer) as client:
        with pytest.raises(EgressDenied, match=r"127\.0\.0\.1 is loopback"):
            await client.get(f"http://public.test\\@127.0.0.1:{server.port}/ok")
    assert resolver.calls == []
    assert dialled_nothing(server, dialer)


# --- the happy path: dial the checked address, keep the name -----------------------------


async def test_allowed_request_dials_the_checked_address_and_keeps_the_name(server: LoopbackServer) -> None:
    resolver = FakeResolver({"public.test": ["127.0.0.1"]})
    dialer = LoopbackOnly()
    events: list[EgressEvent] = []
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, events.append, dialer=dialer) as c:
        response = await c.get(server.url("/echo"))
    assert response.status_code == 200
    assert response.json()["host"] == f"public.test:{server.port}"
    assert response.json()["accept-encoding"] == "identity"
    assert str(response.request.url) == server.url("/echo")  # the caller still sees the name
    assert resolver.calls == ["public.test"]
    assert dialer.dialled == [
        Dial(
            "127.0.0.1",
            server.port,
            "public.test",
            f"public.test:{server.port}",
            f"http://127.0.0.1:{server.port}/echo",
        )
    ]
    assert events == [EgressEvent(server.url("/echo"), allowed=True, address="127.0.0.1")]


async def test_https_sets_sni_to_the_name_not_the_address(server: LoopbackServer) -> None:
    dialer = LoopbackOnly(canned=True)  # no TLS server: the dial request itself is the evidence
    resolver = FakeResolver({"public.test": ["127.0.0.1"]})
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, dialer=dialer) as client:
        response = await client.get(f"https://public.test:{server.port}/x")
    assert response.status_code == 204
    assert dialer.dialled == [
        Dial(
            "127.0.0.1", server.port, "public.test", f"public.test:{server.port}", f"https://127.0.0.1:{server.port}/x"
        )
    ]


async def test_url_credentials_are_stripped(server: LoopbackServer) -> None:
    resolver = FakeResolver({"public.test": ["127.0.0.1"]})
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, dialer=dialer) as client:
        response = await client.get(f"http://user:secret@public.test:{server.port}/echo")
    assert response.status_code == 200
    assert "authorization" not in response.json()
    assert "secret" not in dialer.dialled[0].url
    assert server.arrivals[0].target == "/echo"


async def test_dns_rebinding_cannot_switch_the_dialled_address(server: LoopbackServer) -> None:
    resolver = RebindingResolver()
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, dialer=dialer) as client:
        first = await client.get(server.url("/ok"))
        assert first.text == "hello"
        assert resolver.calls == ["public.test"]  # one lookup per request, and that one is dialled
        assert [d.host for d in dialer.dialled] == ["127.0.0.1"]
        with pytest.raises(EgressDenied, match="private-address"):  # the rebound answer is checked afresh
            await client.get(server.url("/ok"))
    assert len(resolver.calls) == 2
    assert len(dialer.dialled) == 1
    assert len(server.arrivals) == 1


# --- redirects: every hop goes back through the checks -----------------------------------

REDIRECT_RESOLVER = {"public.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"], "inside.test": ["10.1.1.1"]}


@pytest.mark.parametrize(
    ("location", "rule"),
    [
        ("http://10.0.0.1/", "private-address"),
        ("http://metadata.test/latest/meta-data/", "cloud-metadata"),
        ("http://inside.test/", "private-address"),
        ("http://[::ffff:a9fe:a9fe]/", "cloud-metadata"),
        ("http://2130706433/", "numeric-host"),
        ("http://denied.test/", "domain-denied"),
        ("http://public.test:8080/", "port-not-allowed"),
    ],
)
async def test_redirect_to_a_forbidden_target_is_refused(server: LoopbackServer, location: str, rule: str) -> None:
    policy = policy_for(
        server,
        allowed_ports=frozenset({80, server.port}),
        allowed_private=LOOPBACK,
        deny_domains=frozenset({"denied.test"}),
    )
    dialer = LoopbackOnly()
    async with safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=dialer) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get(server.url("/redirect"), params={"to": location})
    assert refused.value.rule == rule
    assert [a.target.split("?")[0] for a in server.arrivals] == ["/redirect"]
    assert len(dialer.dialled) == 1


async def test_allowed_redirect_is_followed_and_rechecked(server: LoopbackServer) -> None:
    resolver = FakeResolver(REDIRECT_RESOLVER)
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server, allowed_private=LOOPBACK), resolver, dialer=dialer) as client:
        response = await client.get(server.url("/redirect"), params={"to": "/ok"})
    assert response.text == "hello"
    assert resolver.calls == ["public.test", "public.test"]
    assert [d.host for d in dialer.dialled] == ["127.0.0.1", "127.0.0.1"]


async def test_redirect_hops_are_limited(server: LoopbackServer) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, max_redirects=2)
    async with safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=LoopbackOnly()) as client:
        with pytest.raises(httpx.TooManyRedirects):
            await client.get(server.url("/loop"))
    assert len(server.arrivals) == 3


# --- size and time caps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rule"),
    [("/big/5000", "response-too-large"), ("/declared/5000", "response-too-large"), ("/gzip", "content-encoding")],
)
async def test_responses_over_the_cap_are_refused(server: LoopbackServer, path: str, rule: str) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, max_response_bytes=1000)
    async with safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=LoopbackOnly()) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get(server.url(path))
    assert refused.value.rule == rule


async def test_streaming_stops_at_the_cap(server: LoopbackServer) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, max_response_bytes=3000)
    received: list[int] = []

    async def read_all(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            received.append(len(chunk))

    client = safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=LoopbackOnly())
    async with client, client.stream("GET", server.url("/big/100000")) as response:
        with pytest.raises(EgressDenied, match="response-too-large"):
            await read_all(response)
    assert sum(received) <= 3000  # refused at the first chunk that crosses the cap


async def test_responses_within_the_cap_pass(server: LoopbackServer) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, max_response_bytes=1000)
    async with safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=LoopbackOnly()) as client:
        response = await client.get(server.url("/big/1000"))
    assert len(response.content) == 1000


async def test_total_time_is_capped_even_when_every_read_is_quick(server: LoopbackServer) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, timeout_s=0.5)
    started = time.monotonic()
    async with safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=LoopbackOnly()) as client:
        with pytest.raises(EgressDenied, match="time-limit"):
            await client.get(server.url("/drip"))
    assert time.monotonic() - started < 3


async def test_a_stalled_server_is_cut_off(server: LoopbackServer) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, timeout_s=0.3)
    started = time.monotonic()
    async with safe_client(policy, FakeResolver(REDIRECT_RESOLVER), dialer=LoopbackOnly()) as client:
        with pytest.raises((EgressDenied, httpx.TimeoutException)):
            await client.get(server.url("/stall"))
    assert time.monotonic() - started < 3


# --- domains, ports, schemes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allow", "deny", "rule"),
    [
        ("a.example.test", {"*.example.test"}, set(), None),
        ("a.b.example.test", {"*.example.test"}, set(), None),
        ("api.example.test", {"api.example.test"}, set(), None),
        ("example.test", {"*.example.test"}, set(), "domain-not-allowed"),
        ("badexample.test", {"*.example.test"}, set(), "domain-not-allowed"),
        ("other.test", {"api.example.test"}, set(), "domain-not-allowed"),
        ("bad.example.test", {"*.example.test"}, {"bad.example.test"}, "domain-denied"),
        ("x.evil.test", set(), {"*.evil.test"}, "domain-denied"),
        ("evil.test.", set(), {"evil.test"}, "domain-denied"),
        ("EVIL.test", set(), {"evil.test"}, "domain-denied"),
        ("127.0.0.1", {"*.example.test"}, set(), "domain-not-allowed"),
    ],
)
async def test_domain_lists_apply_before_resolving(
    server: LoopbackServer, host: str, allow: set[str], deny: set[str], rule: str | None
) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, allow_domains=frozenset(allow), deny_domains=frozenset(deny))
    resolver = FakeResolver(default=["127.0.0.1"])
    async with safe_client(policy, resolver, dialer=LoopbackOnly()) as client:
        if rule is None:
            assert (await client.get(server.url("/ok", host=host))).text == "hello"
            return
        with pytest.raises(EgressDenied) as refused:
            await client.get(server.url("/ok", host=host))
    assert refused.value.rule == rule
    assert resolver.calls == []
    assert server.arrivals == []


@pytest.mark.parametrize(
    ("url", "schemes", "rule"),
    [
        ("http://public.test:{other}/ok", {"http", "https"}, "port-not-allowed"),
        ("http://public.test/ok", {"http", "https"}, "port-not-allowed"),  # 80 is not in this policy's ports
        ("https://public.test:{port}/ok", {"http"}, "scheme-not-allowed"),
        ("http://public.test:{port}/ok", {"https"}, "scheme-not-allowed"),
    ],
)
async def test_ports_and_schemes(server: LoopbackServer, url: str, schemes: set[str], rule: str) -> None:
    policy = policy_for(server, allowed_private=LOOPBACK, allowed_schemes=frozenset(schemes))
    resolver = FakeResolver(default=["127.0.0.1"])
    dialer = LoopbackOnly()
    async with safe_client(policy, resolver, dialer=dialer) as client:
        with pytest.raises(EgressDenied) as refused:
            await client.get(url.format(port=server.port, other=server.port + 1))
    assert refused.value.rule == rule
    assert resolver.calls == []
    assert dialled_nothing(server, dialer)


async def test_other_schemes_never_reach_the_network(server: LoopbackServer) -> None:
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server), FakeResolver(default=["127.0.0.1"]), dialer=dialer) as client:
        with pytest.raises(EgressDenied, match="scheme-not-allowed"):  # httpx hands ftp:// to the transport
            await client.get("ftp://public.test/file")
    assert dialled_nothing(server, dialer)


def test_default_policy_allows_web_ports_only() -> None:
    policy = EgressPolicy()
    assert policy.allowed_schemes == {"http", "https"}
    assert policy.allowed_ports == {80, 443}
    assert policy.allowed_private == frozenset()


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_schemes": frozenset({"ftp"})},
        {"allowed_schemes": frozenset()},
        {"allowed_ports": frozenset({0})},
        {"allow_domains": frozenset({"*.Example.test"})},
        {"deny_domains": frozenset({"127.1"})},
        {"allow_domains": frozenset({"*.10.0.0.1"})},
        {"max_response_bytes": 0},
        {"timeout_s": 0},
        {"max_redirects": -1},
    ],
)
def test_unsafe_policies_are_refused_when_built(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        EgressPolicy(**options)  # type: ignore[arg-type]  # deliberately wrong options


async def test_refusals_are_audited(server: LoopbackServer) -> None:
    events: list[EgressEvent] = []
    dialer = LoopbackOnly()
    async with safe_client(policy_for(server), FakeResolver(REDIRECT_RESOLVER), events.append, dialer=dialer) as client:
        with pytest.raises(EgressDenied):
            await client.get(server.url("/ok", host="metadata.test"))
    assert events == [EgressEvent(server.url("/ok", host="metadata.test"), allowed=False, rule="cloud-metadata")]
    assert dialled_nothing(server, dialer)


async def test_system_resolver_reads_literals_without_the_network() -> None:
    assert await SystemResolver().resolve("127.0.0.1", 80) == [ip_address("127.0.0.1")]


def test_public_surface() -> None:
    assert set(egress.__all__) == {
        "DomainLists",
        "EgressHttp",
        "ListsLoader",
        "redacted_url",
        "EgressAudit",
        "EgressEvent",
        "EgressPolicy",
        "IPAddress",
        "IPNetwork",
        "Resolver",
        "SafeTransport",
        "SystemResolver",
        "check_address",
        "check_host",
        "safe_client",
        "validate_domain_pattern",
    }


def dialled_nothing(server: LoopbackServer, dialer: LoopbackOnly) -> bool:
    return server.arrivals == [] and dialer.dialled == []
