"""Self-hosted tools benchmarks: the confined file walk and the shell sandbox, against plain baselines.

Run from the repository root::

    .venv/bin/python benchmarks/bench_tools_local.py           # full run, about a minute
    .venv/bin/python benchmarks/bench_tools_local.py --quick   # short run, to check it works

No database: everything runs in a temporary directory, removed at exit.

1. Reading a 4 KiB file three directories deep: ``Workspace.read_text`` (an ``openat`` with
   ``O_NOFOLLOW`` per component, lstat/fstat checks) against a plain ``open().read()`` of the
   same path.
2. Writing it: ``Workspace.write_text`` (walk, temp file, fsync, rename) against a plain
   write of a temp file with fsync and rename.
3. ``true`` in the shell: inside bubblewrap (``Sandbox.run``), against the same call without a
   sandbox (``TENANTGATE_SHELL_SANDBOX=none``: ``/bin/sh -c`` with the same rlimits). Skipped,
   with the reason, where bubblewrap cannot run.

Every measurement runs one discarded warm-up round, then several rounds, and reports medians
over the rounds; the cases run as blocks whose order flips every round. See benchmarks/README.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

# The harness modules sit next to this script (see bench_foundation.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BenchError, Plan, Round, compare, header, report, run_concurrently, start, sync_case, time_each
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode
from tenantgate.tools.builtin import Sandbox, Workspace, Workspaces

CONTENT = "x" * 4096
PATH = "a/b/c/file.txt"


@dataclass(frozen=True)
class LocalPlan(Plan):
    file_ops: int  # file reads or writes per round and case
    shell_calls: int  # shell commands per round and case


FULL = LocalPlan(rounds=7, deadline_s=300, file_ops=2000, shell_calls=30)
QUICK = LocalPlan(rounds=3, deadline_s=120, file_ops=300, shell_calls=8)


def _plain_read(path: Path) -> str:
    with path.open(encoding="utf-8") as f:
        return f.read()


def _plain_write(directory: Path, text: str) -> None:
    temp = directory / f".plain-{uuid.uuid4().hex}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, directory / "plain.txt")


async def bench_files(console: Console, plan: LocalPlan, ws: Workspace) -> None:
    ws.write_text(PATH, CONTENT)
    target = ws.directory / PATH
    if ws.read_text(PATH) != _plain_read(target):
        raise BenchError("the confined read and the plain read disagree")
    n = range(plan.file_ops)
    reads = await compare(
        {
            "plain open().read()": sync_case(lambda: Round.sequential(time_each(lambda _: _plain_read(target), n))),
            "Workspace.read_text": sync_case(lambda: Round.sequential(time_each(lambda _: ws.read_text(PATH), n))),
        },
        plan.rounds,
    )
    report(console, f"1. read a 4 KiB file, 3 directories deep ({plan.file_ops} reads per round)", reads,
           baseline="plain open().read()")  # fmt: skip
    writes_n = range(max(plan.file_ops // 10, 20))
    writes = await compare(
        {
            "plain temp + fsync + rename": sync_case(
                lambda: Round.sequential(time_each(lambda _: _plain_write(target.parent, CONTENT), writes_n))
            ),
            "Workspace.write_text": sync_case(
                lambda: Round.sequential(time_each(lambda _: ws.write_text(PATH, CONTENT), writes_n))
            ),
        },
        plan.rounds,
    )
    report(console, f"2. write it atomically ({len(writes_n)} writes per round)", writes,
           baseline="plain temp + fsync + rename")  # fmt: skip


async def bench_shell(console: Console, plan: LocalPlan, ws: Workspace) -> None:
    sandboxed = Sandbox.for_this_process()
    problem = sandboxed.probe()
    if problem is not None:
        console.print(f"3. shell: skipped, bubblewrap cannot run here: {problem}")
        return
    bare = Sandbox.for_this_process(kind="none")

    async def run(sandbox: Sandbox) -> None:
        done = await sandbox.run(ws.directory, "true", timeout_s=30)
        if done.exit_code != 0:
            raise BenchError(f"`true` failed in the {sandbox.kind} sandbox: {done}")

    stats = await compare(
        {
            "sh -c true (no sandbox)": lambda: run_concurrently(lambda: run(bare), plan.shell_calls),
            "bwrap sh -c true": lambda: run_concurrently(lambda: run(sandboxed), plan.shell_calls),
        },
        plan.rounds,
    )
    report(console, f"3. one shell command, start to exit ({plan.shell_calls} per round)", stats,
           baseline="sh -c true (no sandbox)")  # fmt: skip


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    root = Path(tempfile.mkdtemp(prefix="tenantgate-bench-local-"))
    try:
        owner = Sandbox.for_this_process().host_user
        spaces = Workspaces(root / "workspaces", owner=owner)
        ws = spaces.for_tenant(system_context(uuid.uuid4(), mode=DeploymentMode.SELF_HOSTED, request_id="bench"))
        ws.ensure()
        header(console, "tenantgate self-hosted tools benchmarks", plan, quick, f"workspace on {root}")
        asyncio.run(bench_files(console, plan, ws))
        asyncio.run(bench_shell(console, plan, ws))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
