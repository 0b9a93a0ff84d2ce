"""One door for all outbound HTTP: check, resolve once, dial the checked address, cap the response.

``safe_client(policy)`` is the recipe; ``EgressHttp`` hands tools per-call clients with the
tenant's domain lists and audited refusals; ``SafeTransport`` and ``check_address`` are the
parts underneath. Every refusal raises :class:`tenantgate.errors.EgressDenied` naming
its ``rule``.
"""

from tenantgate.egress._addresses import IPAddress, IPNetwork, check_address, check_host
from tenantgate.egress._policy import EgressPolicy, validate_domain_pattern
from tenantgate.egress._source import DomainLists, EgressHttp, ListsLoader, redacted_url
from tenantgate.egress._transport import (
    EgressAudit,
    EgressEvent,
    Resolver,
    SafeTransport,
    SystemResolver,
    safe_client,
)

__all__ = [
    "DomainLists",
    "EgressAudit",
    "EgressEvent",
    "EgressHttp",
    "EgressPolicy",
    "IPAddress",
    "IPNetwork",
    "ListsLoader",
    "Resolver",
    "SafeTransport",
    "SystemResolver",
    "check_address",
    "check_host",
    "redacted_url",
    "safe_client",
    "validate_domain_pattern",
]
