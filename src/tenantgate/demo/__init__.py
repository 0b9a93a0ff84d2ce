"""``tenantgate demo``: the boundary shown end to end, on the embedded PostgreSQL and loopback fakes.

Also home of the loopback fakes themselves (:class:`FakeServer`, :class:`HostTable`,
:class:`LoopbackOnly`), which the test suite uses for every external API too.
"""

from tenantgate.demo._loopback import HostTable, LoopbackOnly
from tenantgate.demo._run import run_demo
from tenantgate.demo._scenario import Check, Conversation, DemoReport
from tenantgate.demo._server import FakeServer, Handler, Reply, Request
from tenantgate.demo._world import DemoWorld

__all__ = [
    "Check",
    "Conversation",
    "DemoReport",
    "DemoWorld",
    "FakeServer",
    "Handler",
    "HostTable",
    "LoopbackOnly",
    "Reply",
    "Request",
    "run_demo",
]
