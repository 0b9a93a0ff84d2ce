"""Redaction throughput in MB/s over realistic JSON log events, against plain JSON work on the same events.

Run from the repository root::

    .venv/bin/python benchmarks/bench_redact.py           # full run, about a minute
    .venv/bin/python benchmarks/bench_redact.py --quick   # short run, to check it works

In memory, one core, no database. The input is a fixed set of structured log events
(``tests/redact_corpus.log_lines``: ids, times, paths, a user agent, a sentence, tool
arguments; one event in 25 carries a realistic secret), with 50 known secrets registered,
as a process that has opened 50 credentials would have. MB are the bytes of the events'
JSON text. Cases, each a block of the whole set per round (order flipped every round):

- ``json.loads`` / ``json.dumps`` of the same events (the baselines: what logging costs anyway);
- one plain ``re.search`` pass over each line's JSON text (the cheapest possible scan);
- ``Redactor.redact(event)``: key names, then every text (the log processor's work);
- ``Redactor.redact_text(line)``: the rendered line as one text;
- ``redact + dumps``: the processor followed by rendering, the real cost of a log line;
- ``redact, 5,000 known``: as ``redact`` with 5,000 registered values (a long-lived SaaS process).

Times are CPU seconds of the benchmark's thread (``time.thread_time``), so MB/s means per
second of one core, whatever else the machine runs. Before timing, every event that
carries a secret must come back without it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The harness modules sit next to this script; the corpus is shared with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.table import Table
from tests.redact_corpus import SECRETS, log_lines

from _harness import BenchError, Plan, Round, Stats, compare, header, start, sync_case, verdict
from tenantgate.redact import Redactor


@dataclass(frozen=True)
class RedactPlan(Plan):
    events: int


FULL = RedactPlan(rounds=7, deadline_s=300, events=20_000)
QUICK = RedactPlan(rounds=3, deadline_s=120, events=3_000)
TARGET_MB_S = 20.0


def block(op: Callable[[Any], object], items: list[Any]) -> Round:
    # CPU time of this thread, not wall time: "MB/s on one core" should not count the time
    # other processes on a shared machine held the core. One latency per event (the mean):
    # the round's rate is events per CPU second.
    started = time.thread_time()
    for item in items:
        op(item)
    seconds = time.thread_time() - started
    return Round(seconds, [seconds / len(items)] * len(items))


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    events = log_lines(plan.events)
    lines = [json.dumps(e) for e in events]
    mb = sum(len(line.encode()) for line in lines) / 1e6
    per_event = mb / len(events)

    redactor = Redactor()
    redactor.known.add_all(f"known-credential-{i:05d}-value" for i in range(50))
    crowded = Redactor()
    crowded.known.add_all(f"known-credential-{i:05d}-value" for i in range(5_000))
    for check in (redactor, crowded):
        for event in events:
            if "detail" in event:
                rendered = json.dumps(check.redact(event))
                if any(s.secret in rendered for s in SECRETS if s.text in event["detail"]):
                    raise BenchError(f"a secret survived redaction: {event['detail'][:40]}...")

    plain = re.compile(r"secret")
    cases = {
        "json.loads": sync_case(lambda: block(json.loads, lines)),
        "json.dumps": sync_case(lambda: block(json.dumps, events)),
        "re.search, one pass": sync_case(lambda: block(plain.search, lines)),
        "redact(event)": sync_case(lambda: block(redactor.redact, events)),
        "redact_text(line)": sync_case(lambda: block(redactor.redact_text, lines)),
        "redact + dumps": sync_case(lambda: block(lambda e: json.dumps(redactor.redact(e)), events)),
        "redact, 5,000 known": sync_case(lambda: block(crowded.redact, events)),
    }
    header(
        console,
        "Redaction throughput",
        plan,
        quick,
        f"{len(events):,} JSON log events, {mb:.1f} MB, {per_event * 1e6:.0f} bytes each; 1 in 25 holds a secret",
    )
    results: dict[str, Stats] = asyncio.run(compare(cases, plan.rounds))
    table = Table(title="MB/s of log events (medians over rounds)", title_justify="left", title_style="bold")
    for column in ("case", "MB/s", "events/s", "µs/event", "spread", "vs json.loads"):
        table.add_column(column, justify="left" if column == "case" else "right")
    base = results["json.loads"].rate
    for name, stats in results.items():
        table.add_row(
            name,
            f"{stats.rate * per_event:,.1f}",
            f"{stats.rate:,.0f}",
            f"{1e6 / stats.rate:.1f}",
            f"{stats.spread:.0%}",
            f"{stats.rate / base:.2f}x",
        )
    console.print(table)
    rate = results["redact(event)"].rate * per_event
    verdict(
        console, f"redact(event) at {rate:.1f} MB/s on one core (target ≥ {TARGET_MB_S:g} MB/s)", rate >= TARGET_MB_S
    )


if __name__ == "__main__":
    main()
