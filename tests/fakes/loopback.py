"""The resolver table and loopback-only dialer for the egress door (shipped with ``tenantgate demo``)."""

from tenantgate.demo import HostTable, LoopbackOnly

__all__ = ["HostTable", "LoopbackOnly"]
