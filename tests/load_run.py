"""One load run end to end: the world up, the mix driven, the work settled, every post-check made.

Shared by ``benchmarks/load.py`` (the long run, with a table) and ``tests/test_load.py`` (a short
run in CI that asserts every check passed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.load_checks import Check, check, settle
from tests.load_mix import Mix, Shape, Traffic
from tests.load_world import Installed, load_world


@dataclass(frozen=True)
class LoadResult:
    traffic: Traffic
    checks: list[Check]
    settle_s: float  # how long the workers took to finish what the run left queued

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


async def run_load(installed: Installed, root: Path, shape: Shape, *, tenants: int) -> LoadResult:
    """``tenants`` tenants driven with ``shape`` against 2 API servers and 2 workers under ``root``."""
    async with load_world(installed, root, tenants=tenants, sessions=shape.concurrency) as world:
        traffic = await Mix(world, shape).run()
        settled = await settle(world)
        return LoadResult(traffic, await check(world, traffic), settled)
