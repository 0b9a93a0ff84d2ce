"""A ``tenantgate worker`` process for the crash tests: the real worker loop, with the test tools.

Settings come from the environment, as for ``tenantgate worker``; only the outside world is
the test's (egress allowed to the fake provider's loopback port), as in every test here.
Usage: ``python -m tests.directive_worker <provider port>``.
"""

from __future__ import annotations

import asyncio
import sys
from ipaddress import ip_network

from tenantgate.config import Settings
from tenantgate.egress import EgressPolicy
from tenantgate.installation import Installation, Outside, Services
from tenantgate.worker import run_worker
from tests import directive_tools, fixture_tools


def main(port: int) -> None:
    settings = Settings()
    installation = Installation.open(settings, migrate_schema=False)
    registry = fixture_tools.registry(settings.mode)
    registry.register_available([directive_tools.charge])
    registry.add_package(directive_tools.PACKAGE)
    policy = EgressPolicy(
        allowed_ports=frozenset({port}), allowed_private=frozenset({ip_network("127.0.0.1/32")}), timeout_s=5.0
    )
    services = Services.build(installation, registry=registry, outside=Outside(policy=policy))
    asyncio.run(run_worker(services))


if __name__ == "__main__":
    main(int(sys.argv[1]))
