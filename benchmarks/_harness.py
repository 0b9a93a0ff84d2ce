"""Benchmark harness: timing, statistics over rounds, result tables and the run's frame.

A benchmark times *cases*. A case is one round of work that returns a `Round` (wall time and
per-operation latencies). `compare` runs blocks of cases with the order flipped every other
round; `interleave` alternates single operations call by call, for A/B comparisons. Both go
through `repeat`: one discarded warm-up round, then `Plan.rounds` rounds, summarised as `Stats`
(medians over rounds). `report` prints them as a table with ratios to a baseline case.

The database lives in `_db`, HTTP serving and load drivers in `_serve`. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console
from rich.table import Table

from tenantgate.logs import configure_logging

T = TypeVar("T")
P = TypeVar("P", bound="Plan")


class BenchError(Exception):
    """The benchmark could not measure what it meant to (a wrong answer, a server that did not start)."""


@dataclass(frozen=True)
class Plan:
    """How much work a run does. Benchmarks subclass it with their own fixed counts: the run is bounded."""

    rounds: int  # measured rounds per measurement, after one warm-up round
    deadline_s: int  # hard stop for the whole run


# --- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One timed batch: how long it took end to end and each operation's latency (seconds)."""

    seconds: float
    latencies: list[float]

    @classmethod
    def sequential(cls, latencies: list[float]) -> Round:
        """A round of back-to-back operations: its wall time is the sum of their latencies."""
        return cls(sum(latencies), latencies)

    @property
    def rate(self) -> float:
        """Operations per second."""
        return len(self.latencies) / self.seconds


@dataclass(frozen=True)
class Stats:
    """Medians over rounds of the throughput and of each round's p50 and p99 latency."""

    rate: float
    p50: float
    p99: float
    spread: float  # (max - min) / median of the per-round throughput

    @classmethod
    def of(cls, rounds: list[Round]) -> Stats:
        """Summarise the measured rounds of one case."""
        rates = [r.rate for r in rounds]
        rate = statistics.median(rates)
        return cls(
            rate=rate,
            p50=statistics.median(percentile(r.latencies, 50) for r in rounds),
            p99=statistics.median(percentile(r.latencies, 99) for r in rounds),
            spread=(max(rates) - min(rates)) / rate,
        )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- timing --------------------------------------------------------------------------------

Case = Callable[[], Awaitable[Round]]  # one round of one case
Op = Callable[[int], Awaitable[object]]  # one operation, given its argument (an index, an id)


async def repeat(one_round: Callable[[], Awaitable[dict[str, Round]]], rounds: int) -> dict[str, Stats]:
    """``rounds`` rounds after one discarded warm-up round; per case, the statistics over rounds."""
    await one_round()
    collected: dict[str, list[Round]] = {}
    for _ in range(rounds):
        for name, result in (await one_round()).items():
            collected.setdefault(name, []).append(result)
    return {name: Stats.of(results) for name, results in collected.items()}


async def compare(cases: dict[str, Case], rounds: int) -> dict[str, Stats]:
    """Each case as one block per round, the order of the blocks reversed every other round."""
    names, turns = list(cases), itertools.count()

    async def one_round() -> dict[str, Round]:
        order = names if next(turns) % 2 == 0 else names[::-1]
        results = {name: await cases[name]() for name in order}
        return {name: results[name] for name in names}

    return await repeat(one_round, rounds)


async def interleave(ops: dict[str, Op], args: Iterable[int], latencies: dict[str, list[float]]) -> None:
    """Call every op with each arg, alternating which op goes first: drift and noise hit them alike.

    For A/B comparisons of single operations, where blocks of calls would each catch different noise.
    Appends each call's latency to ``latencies[name]``; `rounds_of` turns them into rounds.
    """
    names = list(ops)
    for i, arg in enumerate(args):
        for name in names if i % 2 == 0 else reversed(names):
            started = time.perf_counter()
            await ops[name](arg)
            latencies.setdefault(name, []).append(time.perf_counter() - started)


def rounds_of(latencies: dict[str, list[float]]) -> dict[str, Round]:
    """Per case, the sequential round made of its collected latencies."""
    return {name: Round.sequential(values) for name, values in latencies.items()}


def time_each(op: Callable[[T], object], args: Iterable[T]) -> list[float]:
    """The latency of each blocking call ``op(arg)``."""
    latencies = []
    for arg in args:
        started = time.perf_counter()
        op(arg)
        latencies.append(time.perf_counter() - started)
    return latencies


async def run_concurrently(op: Callable[[], Awaitable[object]], calls: int, tasks: int = 1) -> Round:
    """``calls`` awaits of ``op`` shared by ``tasks`` asyncio tasks; wall time and per-call latency."""
    latencies: list[float] = []
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(tasks):
            group.create_task(worker())
    return Round(time.perf_counter() - started, latencies)


def sync_case(fn: Callable[[], Round]) -> Case:
    """A blocking measurement as a case; nothing else runs on the loop meanwhile."""

    async def case() -> Round:
        return fn()

    return case


# --- output --------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """``1.23 ms`` from 1 ms up, ``45.6 µs`` below."""
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"


def ratio(value: float) -> str:
    """``1,275x`` from 100 up, three significant digits below."""
    return f"{value:,.0f}x" if value >= 100 else f"{value:.3g}x"


def report(console: Console, title: str, results: dict[str, Stats], baseline: str) -> None:
    """One row per case: medians over rounds, and ratios to the baseline case of the same run."""
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in ("case", "ops/s", "p50", "p99", "ops/s spread", "ops/s vs base", "p50 vs base"):
        table.add_column(column, justify="left" if column == "case" else "right")
    base = results[baseline]
    for name, s in results.items():
        table.add_row(
            f"{name} [dim](base)[/dim]" if name == baseline else name,
            f"{s.rate:,.0f}",
            duration(s.p50),
            duration(s.p99),
            f"{s.spread:.0%}",
            ratio(s.rate / base.rate),
            ratio(s.p50 / base.p50),
        )
    console.print(table)


def verdict(console: Console, text: str, ok: bool) -> None:
    """A pass (green ✓) or fail (red ✗) line under a table."""
    console.print(f"  {'[green]✓' if ok else '[red]✗'} {text}[/]")


# --- the run -------------------------------------------------------------------------------


def start(description: str | None, full: P, quick: P) -> tuple[P, bool, Console]:
    """Parse ``--quick``, arm the deadline of the chosen plan; the plan, whether quick, and a console."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0] if description else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls: a check that it works")
    is_quick: bool = parser.parse_args().quick
    plan = quick if is_quick else full
    arm_deadline(plan.deadline_s)
    return plan, is_quick, Console(width=None if sys.stdout.isatty() else 120)


def arm_deadline(seconds: int) -> None:
    """Raise `TimeoutError` in the main thread after ``seconds`` (SIGALRM), so cleanup still runs."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the benchmark exceeded its {seconds}s budget")

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


@contextlib.contextmanager
def discarded_logs() -> Iterator[None]:
    """Logging as in production (``info``, JSON): lines are rendered, costing CPU, then written to /dev/null."""
    with open(os.devnull, "w", encoding="utf-8") as sink:
        configure_logging("info", stream=sink)
        yield


def header(console: Console, title: str, plan: Plan, quick: bool, *lines: str) -> None:
    """A rule with the title, then the run's shape, the platform and any further ``lines``."""
    console.rule(f"[bold]{title}")
    console.print(
        "\n".join(
            (
                f"{'quick' if quick else 'full'} run: {plan.rounds} rounds + 1 warm-up per measurement,"
                " medians over rounds",
                f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}",
                *lines,
            )
        )
    )
