"""``tenantgate serve`` and ``tenantgate worker`` for tests whose fake providers listen on loopback.

The real app and the real worker loop, configured from the environment as the CLI does; the only
difference is the egress door: tools and planners may reach 127.0.0.1 (no other non-public
address) on the ports listed in ``CLUSTER_NODE_EGRESS_PORTS`` (comma-separated) and no other port,
where the CLI's door allows public addresses on 80/443 only. A `tests.cluster.ClusterConfig` runs it with::

    serve_command=("-m", "tests.cluster_node", "serve"), worker_command=("-m", "tests.cluster_node", "worker")

Usage: ``python -m tests.cluster_node serve --port P`` or ``python -m tests.cluster_node worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from ipaddress import ip_network

import uvicorn

from tenantgate.agent import PlannerHttp
from tenantgate.api import create_app
from tenantgate.config import Settings
from tenantgate.egress import EgressPolicy
from tenantgate.installation import Installation, Outside, Services
from tenantgate.logs import configure_logging
from tenantgate.redact import Redactor
from tenantgate.worker import run_worker

PORTS_VARIABLE = "CLUSTER_NODE_EGRESS_PORTS"


def loopback_policy(ports: frozenset[int]) -> EgressPolicy:
    """Egress to these ports only, 127.0.0.1 the one non-public address allowed: the fakes, for tools and planners."""
    return EgressPolicy(allowed_ports=ports, allowed_private=frozenset({ip_network("127.0.0.1/32")}), timeout_s=10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("role", choices=["serve", "worker"])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ports = frozenset(int(p) for p in os.environ.get(PORTS_VARIABLE, "").split(",") if p.strip())
    settings = Settings()
    settings.check()
    redactor = Redactor()
    configure_logging(settings.log_level, redactor=redactor)
    installation = Installation.open(settings, migrate_schema=False)
    policy = loopback_policy(ports or frozenset({9}))  # no fakes named: port 9 (discard), nothing listens
    # No shared dialer: each client gets its own connections, as in production (a dialer given to
    # Services.build is one transport for every planner client, and closing one client closes it).
    services = Services.build(
        installation, redactor=redactor, outside=Outside(policy=policy), planner_http=PlannerHttp(policy=policy)
    )
    if args.role == "worker":
        print("cluster_node worker: serving the directive queue", flush=True)
        asyncio.run(run_worker(services))
        return
    uvicorn.run(create_app(services), host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
