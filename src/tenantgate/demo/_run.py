"""Assemble a saas installation on the embedded PostgreSQL with the demo world, and run the story."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.demo._scenario import DemoReport, run_scenario
from tenantgate.demo._world import DemoWorld
from tenantgate.installation import Installation, Outside, Services

__all__ = ["run_demo"]


def run_demo(data_dir: Path, progress: Callable[[str], None]) -> DemoReport:
    """Start (or reuse) an embedded PostgreSQL in ``data_dir``, run the demo, stop the server."""
    settings = Settings(
        _env_file=None,
        mode=DeploymentMode.SAAS,
        data_dir=data_dir,
        database_url=None,
        admin_database_url=None,
        owner_database_url=None,
        key_provider="local",
        agent_planner="scripted",
    )
    progress("starting the embedded PostgreSQL (the first start initialises it)")
    installation = Installation.open(settings)
    try:
        return asyncio.run(_run(installation, progress))
    finally:
        if installation.embedded is not None:
            installation.embedded.stop()


async def _run(installation: Installation, progress: Callable[[str], None]) -> DemoReport:
    async with DemoWorld() as world:
        settings = installation.settings.model_copy(update={"whatsapp_graph_url": world.whatsapp_url})
        # The fake WhatsApp server's port is known only now.
        installation = replace(installation, settings=settings)
        outside = Outside(policy=world.egress_policy(), resolver=world.resolver(), dialer=world.dialer)
        services = Services.build(installation, outside=outside)
        await services.db.verify()
        await services.start()
        try:
            return await run_scenario(services, world, progress)
        finally:
            await services.stop()
