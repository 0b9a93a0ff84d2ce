"""The loopback HTTP server the fakes run on (shipped with ``tenantgate demo``)."""

from tenantgate.demo import FakeServer, Handler, Reply, Request

__all__ = ["FakeServer", "Handler", "Reply", "Request"]
