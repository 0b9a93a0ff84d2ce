"""The egress policy: a frozen option object, validated once when it is built."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tenantgate.egress._addresses import IPAddress, IPNetwork, check_host, deny
from tenantgate.errors import ConfigurationError, EgressDenied

__all__ = ["EgressPolicy", "validate_domain_pattern"]

_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, kw_only=True)
class EgressPolicy:
    """Where outbound HTTP may go, and how much of it.

    ``allow_domains`` and ``deny_domains`` hold exact hosts (``api.example.com``) or
    ``*.suffix`` patterns (``*.example.com`` matches any subdomain, not the apex). A deny
    match always wins; a non-empty allow list refuses every host it does not match.
    ``allowed_private`` lets an operator reach specific internal networks; cloud metadata
    endpoints stay refused even inside them.
    """

    allowed_schemes: frozenset[str] = _SCHEMES
    allowed_ports: frozenset[int] = frozenset({80, 443})
    allow_domains: frozenset[str] = field(default_factory=frozenset)
    deny_domains: frozenset[str] = field(default_factory=frozenset)
    allowed_private: frozenset[IPNetwork] = field(default_factory=frozenset)
    max_response_bytes: int = 10 * 1024 * 1024
    timeout_s: float = 30.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if not self.allowed_schemes or not self.allowed_schemes <= _SCHEMES:
            raise ConfigurationError(
                f"egress schemes must be a non-empty subset of http, https: {self.allowed_schemes}"
            )
        if not self.allowed_ports or any(not 0 < port < 65536 for port in self.allowed_ports):
            raise ConfigurationError(f"egress ports must be a non-empty set of 1..65535: {self.allowed_ports}")
        for pattern in self.allow_domains | self.deny_domains:
            _validate_pattern(pattern)
        if self.max_response_bytes <= 0 or self.timeout_s <= 0 or self.max_redirects < 0:
            raise ConfigurationError("egress limits must be positive (max_redirects may be 0)")

    def check_target(self, scheme: str, host: str, port: int | None) -> tuple[IPAddress | str, int]:
        """The checked host and effective port of a URL; raise before anything is resolved."""
        if scheme not in self.allowed_schemes:
            raise deny(f"scheme {scheme!r} is not allowed", "scheme-not-allowed")
        effective = _DEFAULT_PORTS[scheme] if port is None else port
        if effective not in self.allowed_ports:
            raise deny(f"port {effective} is not allowed", "port-not-allowed")
        target = check_host(host)
        name = str(target)
        if _matches_any(name, self.deny_domains):
            raise deny(f"{name} is on the domain denylist", "domain-denied")
        if self.allow_domains and not _matches_any(name, self.allow_domains):
            raise deny(f"{name} is not on the domain allowlist", "domain-not-allowed")
        return target, effective


def validate_domain_pattern(pattern: str) -> None:
    """Raise :class:`ConfigurationError` unless ``pattern`` is an exact host or ``*.suffix``."""
    _validate_pattern(pattern)


def _validate_pattern(pattern: str) -> None:
    name = pattern.removeprefix("*.")
    try:
        checked = check_host(name)
    except EgressDenied as exc:
        raise ConfigurationError(f"invalid egress domain pattern {pattern!r}: {exc.message}") from None
    if str(checked) != name:
        raise ConfigurationError(f"egress domain pattern {pattern!r} must be lower case without a trailing dot")
    if pattern.startswith("*.") and not isinstance(checked, str):
        raise ConfigurationError(f"egress domain pattern {pattern!r} puts a wildcard on an IP address")


def _matches_any(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif name == pattern:
            return True
    return False
