"""The dependency audit (.ci/audit.py, real pip-audit) against a fake OSV service on loopback: it can fail.

Each test runs the script as CI does, with ``PIP_AUDIT_OSV_URL`` pointing at ``tests/fakes/osv.py``, which
holds one real advisory: Jinja2 GHSA-q2x7-8rv6-6q7h (CVE-2024-56201), affecting 3.0.0 up to 3.1.5.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.osv import JINJA2_FILENAME_BREAKOUT, FakeOsv
from tests.fakes.server import Reply, Request

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "test-lock.txt"
SCRIPT = ROOT / ".ci" / "audit.py"
ADVISORY = "GHSA-q2x7-8rv6-6q7h"


@dataclass(frozen=True)
class Outcome:
    code: int
    output: str  # stdout and stderr together, as a CI log shows them


async def run_audit(url: str, lock: Path, accepted: Path, *, offline_ok: bool = False) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k not in ("TENANTGATE_AUDIT_OFFLINE_OK", "PIP_AUDIT_OSV_URL")}
    env |= {"PIP_AUDIT_OSV_URL": url, "NO_PROXY": "127.0.0.1,localhost"}
    if offline_ok:
        env["TENANTGATE_AUDIT_OFFLINE_OK"] = "1"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--lock", str(lock), "--accepted", str(accepted),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Outcome(process.returncode, output.decode())


@pytest.fixture
async def osv() -> AsyncIterator[FakeOsv]:
    fake = FakeOsv(JINJA2_FILENAME_BREAKOUT)
    async with fake.server:
        yield fake


@pytest.fixture
def vulnerable_lock(tmp_path: Path) -> Path:
    """The real lock with Jinja2 pinned back to 3.1.4, the last release before the fix."""
    text = LOCK.read_text()
    pinned = [line for line in text.splitlines() if line.startswith("jinja2==")]
    assert len(pinned) == 1
    path = tmp_path / "test-lock.txt"
    path.write_text(text.replace(pinned[0], "jinja2==3.1.4"))
    return path


def accepted_file(tmp_path: Path, *, expires: str = "2999-12-31", reason: str = "Only packaged templates.") -> Path:
    path = tmp_path / "accepted.toml"
    path.write_text(
        f'[[accepted]]\nid = "{ADVISORY}"\npackage = "jinja2"\nreason = "{reason}"\n'
        f'accepted_by = "Sam Reviewer <sam@example.com>"\nexpires = {expires}\n'
    )
    return path


def no_acceptances(tmp_path: Path) -> Path:
    path = tmp_path / "none.toml"
    path.write_text("# nothing accepted\n")
    return path


@pytest.mark.parametrize(
    ("name", "version", "affected"),
    [("jinja2", "2.11.3", False), ("Jinja2", "3.0.0", True), ("jinja2", "3.1.4", True), ("jinja2", "3.1.5", False)],
)
async def test_the_fake_matches_versions_as_osv_does(osv: FakeOsv, name: str, version: str, affected: bool) -> None:
    async with httpx.AsyncClient() as client:
        query = {"package": {"name": name, "ecosystem": "PyPI"}, "version": version}
        answer = (await client.post(osv.query_url, json=query)).raise_for_status().json()
        bad = await client.post(osv.query_url, json={"package": {"name": name}})
    assert answer == ({"vulns": [JINJA2_FILENAME_BREAKOUT]} if affected else {})
    assert (bad.status_code, bad.json()) == (400, {"code": 3, "message": "Invalid query."})


async def test_the_locked_set_passes_and_every_pin_was_checked(osv: FakeOsv, tmp_path: Path) -> None:
    outcome = await run_audit(osv.query_url, LOCK, no_acceptances(tmp_path))
    assert outcome.code == 0, outcome.output
    pins = dict(line.split("==") for line in LOCK.read_text().splitlines() if "==" in line and line[0] != "#")
    assert f"dependency audit passed: {len(pins)} locked packages" in outcome.output
    assert osv.queried() == {name.lower().replace("_", "-").replace(".", "-"): v for name, v in pins.items()}


async def test_a_known_vulnerable_pin_fails_the_audit_and_is_named(osv: FakeOsv, vulnerable_lock: Path) -> None:
    outcome = await run_audit(osv.query_url, vulnerable_lock, no_acceptances(vulnerable_lock.parent))
    assert outcome.code == 1, outcome.output
    assert "DEPENDENCY AUDIT FAILED: 1 known vulnerability in test-lock.txt" in outcome.output
    [line] = [line for line in outcome.output.splitlines() if line.strip().startswith("jinja2 3.1.4:")]
    assert ADVISORY in line
    assert "CVE-2024-56201" in line
    assert line.endswith("fixed in 3.1.5")
    assert "audit passed" not in outcome.output


async def test_an_accepted_advisory_passes_and_is_printed_as_accepted(osv: FakeOsv, vulnerable_lock: Path) -> None:
    outcome = await run_audit(osv.query_url, vulnerable_lock, accepted_file(vulnerable_lock.parent))
    assert outcome.code == 0, outcome.output
    assert f"accepted: {ADVISORY} in jinja2, by Sam Reviewer <sam@example.com> until 2999-12-31" in outcome.output
    assert "pip-audit: No known vulnerabilities found, 1 ignored" in outcome.output
    assert osv.queried()["jinja2"] == "3.1.4"  # checked, found, and let through by the acceptance alone


async def test_an_expired_acceptance_fails_the_audit(osv: FakeOsv, vulnerable_lock: Path) -> None:
    outcome = await run_audit(
        osv.query_url, vulnerable_lock, accepted_file(vulnerable_lock.parent, expires="2025-01-31")
    )
    assert outcome.code == 2, outcome.output
    assert f"the acceptance of {ADVISORY} in jinja2 expired on 2025-01-31" in outcome.output


async def test_an_acceptance_without_a_reason_fails_the_audit(osv: FakeOsv, vulnerable_lock: Path) -> None:
    outcome = await run_audit(osv.query_url, vulnerable_lock, accepted_file(vulnerable_lock.parent, reason="  "))
    assert outcome.code == 2, outcome.output
    assert "reason must be non-empty text" in outcome.output
    assert osv.server.arrivals == []  # refused before anything was asked


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_service_fails_the_audit_loudly(tmp_path: Path) -> None:
    outcome = await run_audit(f"http://127.0.0.1:{_closed_port()}/v1/query", LOCK, no_acceptances(tmp_path))
    assert outcome.code == 3, outcome.output
    assert "DEPENDENCY AUDIT NOT RUN: the OSV service at http://127.0.0.1:" in outcome.output
    assert "cannot be reached" in outcome.output
    assert "passed" not in outcome.output
    assert "No known vulnerabilities" not in outcome.output


async def test_the_offline_flag_lets_ci_go_on_but_never_reports_a_pass(tmp_path: Path) -> None:
    outcome = await run_audit(
        f"http://127.0.0.1:{_closed_port()}/v1/query", LOCK, no_acceptances(tmp_path), offline_ok=True
    )
    assert outcome.code == 0, outcome.output
    assert "DEPENDENCY AUDIT NOT RUN" in outcome.output
    assert "No dependency was checked for known vulnerabilities." in outcome.output
    assert "passed" not in outcome.output


async def test_a_service_failing_part_way_fails_the_audit(osv: FakeOsv, tmp_path: Path) -> None:
    answer = osv.handle

    async def failing_on_jinja2(request: Request) -> Reply:
        if request.path == "/v1/query" and request.json()["package"]["name"] == "jinja2":
            return Reply(503, {"code": 14, "message": "unavailable"})
        return await answer(request)

    osv.server.handler = failing_on_jinja2
    outcome = await run_audit(osv.query_url, LOCK, no_acceptances(tmp_path))
    assert outcome.code == 1, outcome.output
    assert "DEPENDENCY AUDIT FAILED: pip-audit exited 1" in outcome.output
    assert "passed" not in outcome.output
