"""`tenantgate demo` runs end to end: its own embedded PostgreSQL, loopback fakes, every check holding."""

from __future__ import annotations

import os
import subprocess
import sys


def test_the_demo_command_shows_every_claim_holding() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "tenantgate", "demo", "--audit-rows", "100"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "every check held" in out
    assert "✗" not in out
    for claim in (
        "A normal request runs its tools",
        '"delete everything" / "rm -rf /" are denied',
        "Reading the other tenant's memory returns nothing",
        "The high-impact send it caused waits for a human, and nothing is sent",
        "Both audit chains verify",
    ):
        assert claim in out
    assert "WhatsApp messages the fake Cloud API received: 0." in out
    assert "capability_denied" in out
    assert "confirmation_required" in out
