"""What may be dialled: host strings and IP addresses, judged before any connection.

Two checks, both raising :class:`EgressDenied`:

* :func:`check_host` accepts only hosts that every parser reads the same way: an IP
  literal in canonical form or a name of LDH labels whose last label starts with a
  letter. ``0177.0.0.1``, ``2130706433``, ``0x7f.1``, ``127.1``, percent-encoded or
  scoped hosts are refused outright, because ``inet_aton`` and resolvers would dial an
  address the string does not show.
* :func:`check_address` refuses every address that is not public unicast: the IANA
  special-purpose ranges, cloud metadata endpoints, and IPv6 forms that embed an IPv4
  address (mapped, compatible, NAT64, 6to4, Teredo), which are judged by what they embed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import TypeAlias

from tenantgate.errors import EgressDenied

__all__ = ["IPAddress", "IPNetwork", "check_address", "check_host", "deny"]

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

# Endpoints that hand out credentials. Never dialled, even inside an allowed network:
# an operator allowing 169.254.0.0/16 for a device almost never means the metadata service.
_METADATA: frozenset[IPAddress] = frozenset(
    {
        IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
        IPv4Address("169.254.170.2"),  # AWS ECS task credentials
        IPv4Address("169.254.170.23"),  # AWS EKS pod identity
        IPv4Address("100.100.100.200"),  # Alibaba Cloud
        IPv4Address("168.63.129.16"),  # Azure wire server (a public address)
        IPv4Address("192.0.0.192"),  # Oracle Cloud
        IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6
        IPv6Address("fd00:ec2::23"),  # AWS EKS pod identity over IPv6
    }
)


def _table(rows: Iterable[tuple[str, str, str]]) -> tuple[tuple[IPNetwork, str, str], ...]:
    return tuple((ip_network(net), what, rule) for net, what, rule in rows)


# Most specific first; the first match names the rule. (RFC 6890 and the IANA registries.)
_IPV4 = _table(
    [
        ("0.0.0.0/8", "in 'this network' (0.0.0.0/8)", "this-network"),
        ("10.0.0.0/8", "private", "private-address"),
        ("100.64.0.0/10", "shared address space (CGNAT)", "shared-address"),
        ("127.0.0.0/8", "loopback", "loopback-address"),
        ("169.254.0.0/16", "link-local", "link-local-address"),
        ("172.16.0.0/12", "private", "private-address"),
        ("192.0.0.0/24", "an IETF protocol assignment", "protocol-assignment"),
        ("192.0.2.0/24", "documentation", "documentation-address"),
        ("192.88.99.0/24", "the deprecated 6to4 relay anycast", "reserved-address"),
        ("192.168.0.0/16", "private", "private-address"),
        ("198.18.0.0/15", "benchmarking", "benchmarking-address"),
        ("198.51.100.0/24", "documentation", "documentation-address"),
        ("203.0.113.0/24", "documentation", "documentation-address"),
        ("224.0.0.0/4", "multicast", "multicast-address"),
        ("240.0.0.0/4", "reserved", "reserved-address"),
    ]
)
_IPV6 = _table(
    [
        ("::/128", "unspecified", "unspecified-address"),
        ("::1/128", "loopback", "loopback-address"),
        ("100::/64", "discard-only", "discard-address"),
        ("2001:2::/48", "benchmarking", "benchmarking-address"),
        ("2001:db8::/32", "documentation", "documentation-address"),
        ("2001::/23", "an IETF protocol assignment", "protocol-assignment"),
        ("3fff::/20", "documentation", "documentation-address"),
        ("5f00::/16", "an SRv6 SID", "reserved-address"),
        ("fc00::/7", "unique-local (private)", "private-address"),
        ("fe80::/10", "link-local", "link-local-address"),
        ("fec0::/10", "site-local", "site-local-address"),
        ("ff00::/8", "multicast", "multicast-address"),
    ]
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")
_TEREDO = IPv6Network("2001::/32")


def deny(message: str, rule: str) -> EgressDenied:
    """The refusal for ``rule``, with the message format every egress refusal uses."""
    return EgressDenied(f"egress_denied: {message} (rule: {rule})", rule=rule)


def check_address(address: IPAddress, *, allowed_private: Iterable[IPNetwork] = frozenset()) -> None:
    """Raise :class:`EgressDenied` unless ``address`` is public or inside ``allowed_private``."""
    allowed = tuple(allowed_private)
    embedded = _embedded(address)
    for candidate in (address, *embedded):
        if candidate in _METADATA:
            shown = str(address) if candidate == address else f"{address} embeds {candidate}, which"
            raise deny(f"{shown} is a cloud metadata endpoint", "cloud-metadata")
    if _inside(address, allowed):
        return
    if address.version == 6 and address in _NAT64_LOCAL:
        # Where a local-use NAT64 prefix puts the IPv4 address depends on the site's prefix
        # length, so what would be dialled cannot be known here.
        raise deny(f"{address} is in the local-use NAT64 prefix 64:ff9b:1::/48", "nat64-local")
    if embedded:
        for inner in embedded:
            if _inside(inner, allowed):
                continue
            verdict = _classify(inner)
            if verdict is not None:
                what, rule = verdict
                raise deny(f"{address} embeds {inner}, which is {what}", rule)
        return
    verdict = _classify(address)
    if verdict is not None:
        what, rule = verdict
        raise deny(f"{address} is {what}", rule)


def _inside(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _classify(address: IPAddress) -> tuple[str, str] | None:
    """``(description, rule)`` if ``address`` may not be dialled; ``None`` if it is public."""
    for network, what, rule in _IPV4 if address.version == 4 else _IPV6:
        if address in network:
            return what, rule
    if address.version == 6 and address not in _GLOBAL_UNICAST:
        return "outside global unicast (2000::/3)", "reserved-address"
    if not address.is_global:  # a backstop for ranges the tables above do not name
        return "not globally routable", "reserved-address"
    return None


def _embedded(address: IPAddress) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries, which is where its traffic really goes."""
    if not isinstance(address, IPv6Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in _TEREDO:
        assert address.teredo is not None
        server, client = address.teredo
        return (server, client)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    low32 = IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return (low32,)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # :: and ::1 are their own thing
        return (low32,)
    return ()


_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")


def check_host(host: str) -> IPAddress | str:
    """The IP literal or the normalised DNS name ``host`` denotes; refuse anything ambiguous.

    ``host`` is the URL's host as httpx holds it: lower case, IDNA-encoded, IPv6 without
    brackets. A single trailing dot is dropped from names.
    """
    if ":" in host:
        if "%" in host:
            raise deny(f"{host!r} is a scoped IPv6 literal", "invalid-host")
        try:
            return IPv6Address(host)
        except ValueError:
            raise deny(f"{host!r} is not a valid IPv6 literal", "invalid-host") from None
    if _DIGITS_AND_DOTS.fullmatch(host):
        try:
            literal = IPv4Address(host)
        except ValueError:
            literal = None
        if literal is None or str(literal) != host:
            raise deny(f"{host!r} is not a canonical dotted-quad address", "numeric-host")
        return literal
    name = host.removesuffix(".")
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise deny(f"{host!r} is not a DNS name of letters, digits and hyphens", "invalid-host")
    if not labels[-1][0].isalpha():
        # A name ending in a numeric label is read as a number by inet_aton (0x7f.1, 127.1).
        raise deny(f"{host!r} looks like a number, not a DNS name", "numeric-host")
    return name
