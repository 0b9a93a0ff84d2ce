"""Gate benchmarks: a decision against a 100-rule tenant policy (vs cedarpy), and a tool call over HTTP.

Run from the repository root::

    .venv/bin/python benchmarks/bench_gate.py           # full run, a few minutes
    .venv/bin/python benchmarks/bench_gate.py --quick   # short run, to check it works

Needs cedarpy (``pip install -e '.[bench]'``). Section 1 runs in memory: no database.
Section 2 starts an embedded PostgreSQL in a temporary directory, removed at exit, or,
with ``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL), provisions a fresh database and
roles on that server and drops them afterwards.

1. ``tenantgate.gate.evaluate`` and ``await Gate.decide`` (an in-memory policy source) for
   one tenant with 100 policy rules, per kind of call (allow, confirm, the kinds of deny),
   each call timed on its own with ``perf_counter_ns``; the baseline is cedarpy deciding the
   same rules translated to Cedar, one call at a time and in batches. Before timing, every
   benchmarked call must get the same allow/deny from both (a confirm counts as an allow).
2. ``POST /v1/tools/echo@v1/call`` on one uvicorn worker, 16 connections, against a bare
   FastAPI route and ``GET /v1/whoami`` on the same server.

Every measurement runs one discarded warm-up round, then several rounds, and reports medians
over the rounds; the cases run as blocks whose order flips every round. See benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import cedarpy
import uvloop
from fastapi import FastAPI
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

# The harness modules sit next to this script (see bench_foundation.py).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import (
    BenchError,
    Case,
    Plan,
    Round,
    Stats,
    compare,
    discarded_logs,
    duration,
    header,
    report,
    start,
    sync_case,
    verdict,
)
from _serve import AppFactory, bare_app, load_case, raw_driver, served
from tenantgate.api import create_app
from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.gate import (
    PROFILES,
    Code,
    ComplianceMode,
    Decision,
    Gate,
    PolicyDocument,
    PolicyStore,
    ProposedCall,
    Switches,
    TenantView,
    Verdict,
    compile_policy,
    evaluate,
)
from tenantgate.installation import Installation, Services
from tenantgate.tools import Capability, ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool

P99_TARGET_S = 20e-6
CEDAR_BATCH = 50  # requests per is_authorized_batch call


@dataclass(frozen=True)
class GatePlan(Plan):
    """How much work each measurement does. Every count is fixed: the run is bounded."""

    decisions: int  # per round and case: each timed on its own
    http_requests: int  # per round and case
    http_connections: int = 16


FULL = GatePlan(rounds=7, decisions=4_000, http_requests=1_500, deadline_s=600)
QUICK = GatePlan(rounds=5, decisions=500, http_requests=300, deadline_s=240)


# --- tools: the shapes of real ones, handlers that do nothing ----------------------------------


class EchoArgs(BaseModel):
    text: str = Field(max_length=1000)


class FetchArgs(BaseModel):
    url: str = Field(max_length=2048)


class SendArgs(BaseModel):
    to: str = Field(pattern=r"^\+[0-9]{6,15}$")
    message: str = Field(min_length=1, max_length=4096)


SHEET_ID = r"^[A-Za-z0-9_-]{3,100}$"


class SheetReadArgs(BaseModel):
    spreadsheet_id: str = Field(pattern=SHEET_ID)
    cell_range: str = Field(pattern=r"^[A-Z]{1,3}[0-9]{1,7}(:[A-Z]{1,3}[0-9]{1,7})?$")
    max_rows: int = Field(100, ge=1, le=10_000)


class SheetAppendArgs(BaseModel):
    spreadsheet_id: str = Field(pattern=SHEET_ID)
    values: list[list[str]] = Field(min_length=1, max_length=1000)


class MemorySearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=500)
    limit: int = Field(10, ge=1, le=100)


class MemoryWriteArgs(BaseModel):
    key: str = Field(pattern=r"^[a-z0-9_/.-]{1,200}$")
    value: str = Field(max_length=10_000)


class WipeArgs(BaseModel):
    scope: Literal["session", "all"]


@tool("echo@v1", description="Repeat the text.", effect=ToolEffect.READ)
async def echo(call: ToolCall, args: EchoArgs) -> dict[str, str]:
    return {"text": args.text}


@tool("web_fetch@v1", description="Fetch a web page.", effect=ToolEffect.READ,
      capabilities={Capability.NET_EGRESS}, integration="web")  # fmt: skip
async def web_fetch(call: ToolCall, args: FetchArgs) -> dict[str, str]:
    return {"url": args.url, "text": ""}


@tool("whatsapp_send@v1", description="Send a WhatsApp message.", effect=ToolEffect.EXTERNAL,
      capabilities={Capability.MESSAGING_OUTBOUND, Capability.CREDENTIALS}, high_impact=True,
      integration="whatsapp")  # fmt: skip
async def whatsapp_send(call: ToolCall, args: SendArgs) -> dict[str, str]:
    return {"status": "sent"}


@tool("sheets_read@v1", description="Read cells of a spreadsheet.", effect=ToolEffect.READ,
      capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS}, integration="google_sheets")  # fmt: skip
async def sheets_read(call: ToolCall, args: SheetReadArgs) -> dict[str, list[list[str]]]:
    return {"values": []}


@tool("sheets_append@v1", description="Append rows to a spreadsheet.", effect=ToolEffect.WRITE,
      capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS}, integration="google_sheets")  # fmt: skip
async def sheets_append(call: ToolCall, args: SheetAppendArgs) -> dict[str, int]:
    return {"appended": len(args.values)}


@tool("memory_search@v1", description="Search the tenant's memory.", effect=ToolEffect.READ,
      capabilities={Capability.MEMORY})  # fmt: skip
async def memory_search(call: ToolCall, args: MemorySearchArgs) -> dict[str, list[str]]:
    return {"hits": []}


@tool("memory_write@v1", description="Store a note in the tenant's memory.", effect=ToolEffect.WRITE,
      capabilities={Capability.MEMORY})  # fmt: skip
async def memory_write(call: ToolCall, args: MemoryWriteArgs) -> dict[str, str]:
    return {"stored": args.key}


@tool("memory_wipe@v1", description="Delete the tenant's memory.", effect=ToolEffect.DESTRUCTIVE,
      capabilities={Capability.MEMORY}, required_role=Role.ADMIN)  # fmt: skip
async def memory_wipe(call: ToolCall, args: WipeArgs) -> dict[str, str]:
    return {"wiped": args.scope}


def gate_registry() -> ToolRegistry:
    """Section 1: eight tools in five packages, as a SaaS platform would offer them."""
    registry = ToolRegistry(DeploymentMode.SAAS)
    for t in (echo, web_fetch, whatsapp_send, sheets_read, sheets_append, memory_search, memory_write, memory_wipe):
        registry.register(t)
    for package in (
        ToolPackage("basics", "Basics.", ("echo@v1",)),
        ToolPackage("web", "The web.", ("web_fetch@v1",)),
        ToolPackage("whatsapp", "WhatsApp.", ("whatsapp_send@v1",)),
        ToolPackage("google_sheets", "Google Sheets.", ("sheets_read@v1", "sheets_append@v1")),
        ToolPackage("memory", "Memory.", ("memory_search@v1", "memory_write@v1", "memory_wipe@v1")),
    ):
        registry.add_package(package)
    return registry


def http_registry() -> ToolRegistry:
    """Section 2: the trivial echo tool, alone in its package."""
    registry = ToolRegistry(DeploymentMode.SAAS)
    registry.register(echo)
    registry.add_package(ToolPackage("basics", "Basics.", ("echo@v1",)))
    return registry


# --- one tenant's policy: 100 rules --------------------------------------------------------------

TENANT = uuid.UUID("00000000-0000-4000-8000-00000000beef")
USERS = 40  # u00 owner, u01-u03 admins, the rest members


def user(n: int) -> uuid.UUID:
    return uuid.uuid5(TENANT, f"u{n:02d}")


def role_of(n: int) -> Role:
    return Role.OWNER if n == 0 else Role.ADMIN if n <= 3 else Role.MEMBER


def contacts(n: int) -> list[str]:
    return [f"+49151{n:02d}{i:05d}" for i in range(8)]


SUPPORT_LINES = ["+4930900100", "+4930900101", "+4930900102", "+4930900103"]
PREMIUM_NUMBERS = ["+4990012345", "+4990054321", "+4990099999"]
DOCS_SITES = ["docs.python.org", "developer.mozilla.org", "*.readthedocs.io", "docs.github.com",
              "learn.microsoft.com", "cloud.google.com", "docs.aws.amazon.com", "*.wikipedia.org"]  # fmt: skip


def cond(path: str, op: str, value: Any) -> dict[str, Any]:
    return {"path": path, "op": op, "value": value}


def policy_document() -> dict[str, Any]:
    """94 grants (81 naming one principal, 13 for roles or groups) and 6 forbids.

    Principal grants bind arguments the way the conditions are meant to be used: each user's
    WhatsApp contacts, the sites their research may fetch, the spreadsheets they may read.
    """
    grants: list[dict[str, Any]] = []
    for n in range(4, 26):
        grants.append({"id": f"u{n:02d}-whatsapp", "tools": ["whatsapp_send@v1"], "principals": [str(user(n))],
                       "when": [cond("to", "one_of", contacts(n))]})  # fmt: skip
        grants.append({"id": f"u{n:02d}-research", "tools": ["web_fetch@v1"], "principals": [str(user(n))],
                       "when": [cond("url", "url_domain", [f"client{n}.example.com", f"*.partner{n}.example.net",
                                                           "docs.python.org"])]})  # fmt: skip
    for n in range(8, 30):
        grants.append({"id": f"u{n:02d}-sheets-read", "tools": ["sheets_read@v1"], "principals": [str(user(n))],
                       "when": [cond("spreadsheet_id", "one_of", [f"fin-{n}-a", f"fin-{n}-b"]),
                                cond("max_rows", "range", {"min": 1, "max": 1000})]})  # fmt: skip
    for n in range(10, 25):
        grants.append({"id": f"u{n:02d}-sheets-append", "tools": ["sheets_append@v1"], "principals": [str(user(n))],
                       "when": [cond("spreadsheet_id", "prefix", f"team{n}-")]})  # fmt: skip
    grants += [
        {"id": "members-echo", "tools": ["echo@v1"], "roles": ["member"]},
        {"id": "members-memory-search", "tools": ["memory_search@v1"], "roles": ["member"],
         "when": [cond("limit", "range", {"max": 20})]},
        {"id": "members-memory-notes", "tools": ["memory_write@v1"], "roles": ["member"],
         "when": [cond("key", "prefix", "notes/")]},
        {"id": "members-docs", "tools": ["web_fetch@v1"], "roles": ["member"],
         "when": [cond("url", "url_domain", DOCS_SITES)]},
        {"id": "members-shared-sheets", "tools": ["sheets_read@v1"], "roles": ["member"],
         "when": [cond("spreadsheet_id", "prefix", "shared-"), cond("max_rows", "range", {"max": 200})]},
        {"id": "members-support-line", "tools": ["whatsapp_send@v1"], "roles": ["member"],
         "when": [cond("to", "one_of", SUPPORT_LINES)]},
        {"id": "admins-wipe", "tools": ["memory_wipe@v1"], "roles": ["admin"]},
        {"id": "admins-sheets", "tools": ["sheets_read@v1", "sheets_append@v1"], "roles": ["admin"]},
        {"id": "admins-web", "tools": ["web_fetch@v1"], "roles": ["admin"],
         "when": [cond("url", "url_domain", ["example.com", "*.example.com", "*.example.org"])]},
        {"id": "owner-everything", "tools": ["*"], "roles": ["owner"]},
        {"id": "oncall-memory", "tools": ["memory_write@v1"], "principals": [str(user(n)) for n in (30, 31, 32)]},
        {"id": "finance-append", "tools": ["sheets_append@v1"], "principals": [str(user(n)) for n in range(33, 37)],
         "when": [cond("spreadsheet_id", "one_of", ["ledger-2024", "ledger-2025", "payroll"])]},
        {"id": "careful-writer", "tools": ["memory_write@v1"], "principals": [str(user(37))], "confirm": True},
    ]  # fmt: skip
    forbids = [
        {"id": "no-secrets", "tools": ["echo@v1"], "when": [cond("text", "prefix", "secret")]},
        {"id": "no-paste-sites", "tools": ["web_fetch@v1"],
         "when": [cond("url", "url_domain", ["pastebin.com", "*.paste.example.net"])]},
        {"id": "no-premium-numbers", "tools": ["whatsapp_send@v1"], "when": [cond("to", "one_of", PREMIUM_NUMBERS)]},
        {"id": "no-system-memory", "tools": ["memory_write@v1"], "when": [cond("key", "prefix", "system/")]},
        {"id": "no-huge-reads", "tools": ["sheets_read@v1"], "when": [cond("max_rows", "range", {"min": 5000})]},
        {"id": "offboarded", "tools": ["*"], "principals": [str(user(38)), str(user(39))]},
    ]  # fmt: skip
    packages = [{"package": p} for p in ("basics", "web", "whatsapp", "google_sheets", "memory")]
    return {"packages": packages, "grants": grants, "forbids": forbids}


# --- the same policy in Cedar --------------------------------------------------------------------


def cedar_string(value: str) -> str:
    return json.dumps(value)  # Cedar string literals escape like JSON for these ASCII values


def cedar_uid(kind: str, id_: str) -> str:
    return f"{kind}::{cedar_string(id_)}"


def cedar_condition(path: str, op: str, value: Any) -> str:
    """One argument condition as a Cedar expression on ``context``.

    Cedar has no URL parser: ``url_domain`` becomes ``like`` patterns on the URL (an exact host,
    or ``*.suffix``, followed by a path), which agrees with tenantgate on the benchmarked URLs
    but is not a safe domain check in general (ports, userinfo, ``https://evil/?x.suffix/``).
    """
    attr = "context." + path
    if op == "one_of":
        return f"[{', '.join(cedar_string(v) for v in value)}].contains({attr})"
    if op == "prefix":
        assert "*" not in value
        return f"{attr} like {cedar_string(value + '*')}"
    if op == "range":
        assert all(isinstance(b, int) for b in value.values()), "Cedar compares integers (Long) only"
        bounds = [f"{attr} >= {value['min']}"] if "min" in value else []
        bounds += [f"{attr} <= {value['max']}"] if "max" in value else []
        return "(" + " && ".join(bounds) + ")"
    if op == "url_domain":
        patterns = [
            f"{attr} like {cedar_string(f'{scheme}://{host}/*')}" for host in value for scheme in ("https", "http")
        ]
        return "(" + " || ".join(patterns) + ")"
    raise BenchError(f"no Cedar translation for the {op!r} condition")


def cedar_rule(effect: str, rule: dict[str, Any]) -> str:
    """A grant or forbid as a Cedar policy: principals and roles, tools as actions, conditions in ``when``."""
    assert "kinds" not in rule, "every benchmarked caller is a user: the default kinds cover them"
    principals, roles, tools = rule.get("principals"), rule.get("roles"), rule["tools"]
    scope_principal, guards = "principal", []
    if principals is not None and len(principals) == 1:
        scope_principal = f"principal == {cedar_uid('User', principals[0])}"
    elif principals is not None:
        guards.append(f"principal in [{', '.join(cedar_uid('User', p) for p in principals)}]")
    if roles is not None and len(roles) == 1 and principals is None:
        scope_principal = f"principal in {cedar_uid('Role', roles[0])}"  # roles are groups: owner in admin in member
    elif roles is not None:
        guards.append(f"principal in [{', '.join(cedar_uid('Role', r) for r in roles)}]")
    if tools == ["*"]:
        scope_action = "action"
    elif len(tools) == 1:
        scope_action = f"action == {cedar_uid('Action', tools[0])}"
    else:
        scope_action = f"action in [{', '.join(cedar_uid('Action', t) for t in tools)}]"
    guards += [cedar_condition(c["path"], c["op"], c["value"]) for c in rule.get("when", [])]
    when = f" when {{ {' && '.join(guards)} }}" if guards else ""
    return f"@id({cedar_string(rule['id'])})\n{effect}({scope_principal}, {scope_action}, resource){when};"


def cedar_policies(document: dict[str, Any]) -> str:
    """The tenant's 100 rules, plus the one rule the registry enforces in tenantgate (memory_wipe needs admin)."""
    rules = [cedar_rule("permit", g) for g in document["grants"]]
    rules += [cedar_rule("forbid", f) for f in document["forbids"]]
    rules.append(
        '@id("platform-memory-wipe-needs-admin")\n'
        'forbid(principal, action == Action::"memory_wipe@v1", resource) unless { principal in Role::"admin" };'
    )
    return "\n\n".join(rules)


def cedar_entities() -> str:
    """Users as members of their role; roles nested so that an owner is in admin and an admin in member."""
    role_parent = {"owner": ["admin"], "admin": ["member"], "member": []}
    entities: list[dict[str, Any]] = [
        {"uid": {"type": "Role", "id": r}, "attrs": {}, "parents": [{"type": "Role", "id": p} for p in parents]}
        for r, parents in role_parent.items()
    ]
    entities += [
        {"uid": {"type": "User", "id": str(user(n))}, "attrs": {},
         "parents": [{"type": "Role", "id": role_of(n).value}]}
        for n in range(USERS)
    ]  # fmt: skip
    return json.dumps(entities)


# --- the benchmarked calls -------------------------------------------------------------------------

CallSpec = tuple[int, str, dict[str, Any], Code]  # user number, tool, arguments, expected code

KINDS: dict[str, list[CallSpec]] = {
    "allow": [
        (30, "echo@v1", {"text": "hello"}, Code.ALLOWED),
        (5, "web_fetch@v1", {"url": "https://client5.example.com/report"}, Code.ALLOWED),
        (12, "sheets_read@v1", {"spreadsheet_id": "fin-12-a", "cell_range": "A1:D50", "max_rows": 500}, Code.ALLOWED),
        (33, "memory_search@v1", {"query": "q3 revenue", "limit": 10}, Code.ALLOWED),
        (2, "memory_wipe@v1", {"scope": "session"}, Code.ALLOWED),
    ],
    "confirm": [
        (6, "whatsapp_send@v1", {"to": contacts(6)[3], "message": "Running late"}, Code.CONFIRMATION_REQUIRED),
        (35, "whatsapp_send@v1", {"to": SUPPORT_LINES[1], "message": "Printer down"}, Code.CONFIRMATION_REQUIRED),
        (37, "memory_write@v1", {"key": "drafts/plan", "value": "v2"}, Code.CONFIRMATION_REQUIRED),
    ],
    "deny: argument condition": [
        (6, "whatsapp_send@v1", {"to": "+4915199999999", "message": "hi"}, Code.ARGUMENT_DENIED),
        (5, "web_fetch@v1", {"url": "https://evil.example.net/x"}, Code.ARGUMENT_DENIED),
        (12, "sheets_read@v1", {"spreadsheet_id": "fin-12-a", "cell_range": "A1", "max_rows": 2000},
         Code.ARGUMENT_DENIED),
    ],
    "deny: forbid": [
        (30, "echo@v1", {"text": "secret plans"}, Code.POLICY_DENIED),
        (31, "memory_write@v1", {"key": "system/config", "value": "x"}, Code.POLICY_DENIED),
        (38, "echo@v1", {"text": "hi"}, Code.POLICY_DENIED),
    ],
    "deny: not granted / role": [
        (30, "sheets_append@v1", {"spreadsheet_id": "team30-x", "values": [["a"]]}, Code.NOT_GRANTED),
        (35, "memory_wipe@v1", {"scope": "all"}, Code.ROLE_REQUIRED),
        (4, "sheets_append@v1", {"spreadsheet_id": "team4-x", "values": [["a", "b"]]}, Code.NOT_GRANTED),
    ],
    "deny: unknown tool": [
        (30, "shell@v1", {"command": "ls"}, Code.UNKNOWN_TOOL),
        (30, "delete_everything", {}, Code.UNKNOWN_TOOL),
        (31, "echo@v2", {"text": "hi"}, Code.UNKNOWN_TOOL),
    ],
    "deny: invalid arguments": [
        (5, "web_fetch@v1", {"url": 42}, Code.INVALID_ARGUMENTS),
        (12, "sheets_read@v1", {"spreadsheet_id": "fin-12-a", "cell_range": "A1:B2", "max_rows": "lots"},
         Code.INVALID_ARGUMENTS),
        (6, "whatsapp_send@v1", {"to": "0151 bad", "message": "hi"}, Code.INVALID_ARGUMENTS),
    ],
}  # fmt: skip
MIX = "mix (all of the above, in turn)"
# Each URL argument comes in this many variants (a different path), taken in turn: more distinct URLs than
# urlsplit's cache (128) holds, so every decision parses its URL, as it would for an agent's real fetches.
URL_VARIANTS = 256


@dataclass(frozen=True)
class BenchCall:
    """One proposed call, for tenantgate and as a Cedar request, and the code tenantgate must answer."""

    ctx: TenantContext
    call: ProposedCall
    request: dict[str, Any]
    expected: Code

    def describe(self) -> str:
        return f"u{next(n for n in range(USERS) if user(n) == self.ctx.principal_id):02d} {self.call.tool}"


def bench_call(n: int, name: str, arguments: dict[str, Any], expected: Code) -> BenchCall:
    ctx = TenantContext(tenant_id=TENANT, principal_id=user(n), kind=PrincipalKind.USER,
                        roles=frozenset({role_of(n)}), mode=DeploymentMode.SAAS, request_id="bench")  # fmt: skip
    # Entity uids as {type, id}: cedarpy decides 15-30 µs faster than with 'User::"..."' strings to parse.
    request = {"principal": {"type": "User", "id": str(user(n))}, "action": {"type": "Action", "id": name},
               "resource": {"type": "Tenant", "id": str(TENANT)}, "context": arguments}  # fmt: skip
    return BenchCall(ctx, ProposedCall(name, arguments), request, expected)


def url_variant(value: Any, j: int) -> Any:
    return f"{value}/{j}" if isinstance(value, str) and value.startswith(("http://", "https://")) else value


def in_turn(specs: list[CallSpec]) -> list[BenchCall]:
    """The calls in turn, `URL_VARIANTS` times; each time with other URLs, and always new objects."""
    return [
        bench_call(n, name, {k: url_variant(v, j) for k, v in arguments.items()}, expected)
        for j in range(URL_VARIANTS)
        for n, name, arguments, expected in specs
    ]


class InMemoryPolicies:
    """A `PolicySource` with nothing to load: what `PolicyCache` is once a tenant's view is cached."""

    def __init__(self, view: TenantView) -> None:
        self._view = view
        self._platform = Switches()

    async def view(self, ctx: TenantContext) -> TenantView:
        return self._view

    async def platform(self) -> Switches:
        return self._platform


@dataclass(frozen=True)
class Deciders:
    registry: ToolRegistry
    view: TenantView
    platform: Switches
    gate: Gate
    policies: cedarpy.PolicySet
    entities: cedarpy.Entities

    def evaluate(self, c: BenchCall) -> Decision:
        return evaluate(c.ctx, c.call, registry=self.registry, view=self.view, platform=self.platform)


def deciders(document: dict[str, Any]) -> Deciders:
    registry = gate_registry()
    parsed = PolicyDocument.model_validate(document)
    parsed.check(registry)  # what PolicyStore.set_policy would refuse, refused here too
    view = compile_policy(TENANT, 1, parsed, registry, compliance=PROFILES[ComplianceMode.STANDARD],
                          switches=Switches())  # fmt: skip
    return Deciders(
        registry=registry,
        view=view,
        platform=Switches(),
        gate=Gate(registry=registry, policies=InMemoryPolicies(view)),
        # Parsed once, reused by every call: what a service deciding many requests would do.
        policies=cedarpy.PolicySet.from_str(cedar_policies(document)),
        entities=cedarpy.Entities.from_json_str(cedar_entities()),
    )


async def check_agreement(d: Deciders, calls: list[BenchCall], console: Console) -> None:
    """Every call gets its expected code, the same from evaluate and Gate.decide, and Cedar's allow/deny."""
    problems: list[str] = []
    batch = cedarpy.is_authorized_batch([c.request for c in calls], d.policies, d.entities)
    for c, batched in zip(calls, batch, strict=True):
        evaluated, decided = d.evaluate(c), await d.gate.decide(c.ctx, c.call)
        cedar = cedarpy.is_authorized(c.request, d.policies, d.entities)
        allowed = evaluated.verdict in (Verdict.ALLOW, Verdict.CONFIRM)  # Cedar has no confirm
        if evaluated.code is not c.expected:
            problems.append(f"{c.describe()}: tenantgate said {evaluated.code.value}, expected {c.expected.value}")
        if decided != evaluated:
            problems.append(f"{c.describe()}: Gate.decide said {decided.code.value}, evaluate {evaluated.code.value}")
        if cedar.allowed != allowed or batched.allowed != allowed:
            problems.append(f"{c.describe()}: Cedar {cedar.decision.name} (batch {batched.decision.name}),"
                            f" tenantgate {evaluated.verdict.value}")  # fmt: skip
    if problems:
        raise BenchError(
            "Cedar and tenantgate disagree, or a call is not what it should be:\n  " + "\n  ".join(problems)
        )
    allows = sum(d.evaluate(c).verdict is not Verdict.DENY for c in calls)
    verdict(console, f"Cedar and tenantgate agree on all {len(calls):,} calls ({len(calls) // URL_VARIANTS} shapes x "
                     f"{URL_VARIANTS} URL variants; {allows:,} allow or confirm, {len(calls) - allows:,} deny);"
                     " every call got its expected code", ok=True)  # fmt: skip


# --- timing ------------------------------------------------------------------------------------------


def fresh(case: Case) -> Case:
    """The case after a full collection, so earlier cases' garbage is not collected on its time."""

    async def run() -> Round:
        gc.collect()
        return await case()

    return run


def ns_round(latencies_ns: list[int]) -> Round:
    return Round.sequential([ns / 1e9 for ns in latencies_ns])


def time_sync(op: Callable[[BenchCall], object], calls: Sequence[BenchCall], n: int) -> Round:
    """``n`` calls of ``op``, taking the calls in turn, each timed on its own."""
    clock, latencies, k = time.perf_counter_ns, [], len(calls)
    for i in range(n):
        c = calls[i % k]
        started = clock()
        op(c)
        latencies.append(clock() - started)
    return ns_round(latencies)


async def time_decide(gate: Gate, calls: Sequence[BenchCall], n: int) -> Round:
    clock, latencies, k = time.perf_counter_ns, [], len(calls)
    for i in range(n):
        c = calls[i % k]
        started = clock()
        await gate.decide(c.ctx, c.call)
        latencies.append(clock() - started)
    return ns_round(latencies)


def time_cedar_batches(d: Deciders, calls: Sequence[BenchCall], n: int) -> Round:
    """``n`` requests in batches of `CEDAR_BATCH`; each request's latency is its batch's time / batch size."""
    requests = [calls[i % len(calls)].request for i in range(CEDAR_BATCH)]
    clock, total, latencies = time.perf_counter_ns, 0, []
    for _ in range(max(1, n // CEDAR_BATCH)):
        started = clock()
        cedarpy.is_authorized_batch(requests, d.policies, d.entities)
        elapsed = clock() - started
        total += elapsed
        latencies += [elapsed / CEDAR_BATCH / 1e9] * CEDAR_BATCH
    return Round(total / 1e9, latencies)


EVALUATE, DECIDE = "tenantgate evaluate()", "tenantgate await Gate.decide()"
CEDAR, CEDAR_BATCHED = "cedarpy is_authorized()", f"cedarpy is_authorized_batch(), {CEDAR_BATCH}/batch"


async def bench_decisions(d: Deciders, calls: list[BenchCall], plan: GatePlan) -> dict[str, Stats]:
    def cedar(c: BenchCall) -> object:
        return cedarpy.is_authorized(c.request, d.policies, d.entities)

    n = plan.decisions
    cases: dict[str, Case] = {
        CEDAR: sync_case(lambda: time_sync(cedar, calls, n)),
        CEDAR_BATCHED: sync_case(lambda: time_cedar_batches(d, calls, n)),
        EVALUATE: sync_case(lambda: time_sync(d.evaluate, calls, n)),
        DECIDE: partial(time_decide, d.gate, calls, n),
    }
    return await compare({name: fresh(case) for name, case in cases.items()}, plan.rounds)


async def section_decisions(plan: GatePlan, console: Console) -> dict[str, dict[str, Stats]]:
    document = policy_document()
    rules = len(document["grants"]) + len(document["forbids"])
    d = deciders(document)
    calls = {kind: in_turn(specs) for kind, specs in KINDS.items()}
    calls[MIX] = everything = in_turn([spec for specs in KINDS.values() for spec in specs])
    console.print(
        f"[bold]1. One decision, in process[/bold]: one tenant, {rules} rules ({len(document['grants'])} grants, "
        f"{len(document['forbids'])} forbids), {USERS} principals, {len(d.registry)} tools; Cedar: {len(d.policies)}"
        f" policies (the rules + memory_wipe needs admin), {len(d.entities)} entities;"
        f" {plan.decisions:,} decisions/round/case"
    )
    await check_agreement(d, everything, console)
    results: dict[str, dict[str, Stats]] = {}
    for kind, kind_calls in calls.items():
        results[kind] = stats = await bench_decisions(d, kind_calls, plan)
        report(console, f"1. {kind} ({len(kind_calls) // URL_VARIANTS} calls in turn)", stats, baseline=CEDAR)
    return results


def summarize(console: Console, results: dict[str, dict[str, Stats]]) -> None:
    table = Table(title="1. Targets: p99 < 20 µs, and faster than cedarpy", title_justify="left", title_style="bold")
    for column in ("kind", "evaluate p50", "evaluate p99", "decide p50", "decide p99", "cedarpy p50", "cedarpy p99",
                   "cedarpy p50 / decide p50"):  # fmt: skip
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, s in results.items():
        cells = [duration(getattr(s[name], q)) for name in (EVALUATE, DECIDE, CEDAR) for q in ("p50", "p99")]
        table.add_row(kind, *cells, f"{s[CEDAR].p50 / s[DECIDE].p50:.1f}x")
    console.print(table)
    for name in (EVALUATE, DECIDE):
        worst = max(results.values(), key=lambda s: s[name].p99)[name].p99
        verdict(console, f"{name}: worst p99 over the kinds {duration(worst)} (target < 20 µs)", worst < P99_TARGET_S)
        faster = all(s[name].p50 < s[CEDAR].p50 and s[name].p99 < s[CEDAR].p99 for s in results.values())
        verdict(console, f"{name}: p50 and p99 below cedarpy's in every kind", faster)


# --- 2. POST /v1/tools/{name}/call over HTTP -----------------------------------------------------


def gate_app(settings: dict[str, Any]) -> FastAPI:
    """The tenantgate API with `http_registry` (built in the server process)."""
    installation = Installation.open(Settings(_env_file=None, **settings), migrate_schema=False)
    return create_app(Services.build(installation, registry=http_registry()))


async def install_echo_policy(settings: dict[str, Any]) -> str:
    """A tenant whose policy grants echo@v1 to its members; the owner's API key."""
    async with running_services(settings) as services:
        tenant = await new_tenant(services)
        # running_services builds the default registry; the policy is checked against the server's.
        store = PolicyStore(db=services.db, registry=http_registry(), audit=services.audit)
        system = system_context(tenant.tenant_id, mode=services.settings.mode, request_id="bench")
        await store.set_policy(
            system, {"packages": [{"package": "basics"}], "grants": [{"id": "echo", "tools": ["echo@v1"]}]}
        )
        return tenant.key


async def bench_http(settings: dict[str, Any], key: str, plan: GatePlan) -> dict[str, Stats]:
    auth = {"Authorization": f"Bearer {key}"}
    servers: dict[str, tuple[AppFactory, dict[str, Any]]] = {
        "bare": (bare_app, {}),
        "tenantgate": (gate_app, {"settings": settings}),
    }
    targets: dict[str, tuple[str, str, dict[str, str], dict[str, Any]]] = {
        "bare FastAPI GET /noop": ("bare", "/noop", {}, {}),
        "tenantgate GET /v1/whoami": ("tenantgate", "/v1/whoami", auth, {}),
        "tenantgate POST /v1/tools/echo@v1/call": (
            "tenantgate",
            "/v1/tools/echo@v1/call",
            {**auth, "Content-Type": "application/json"},
            {"method": "POST", "body": json.dumps({"arguments": {"text": "hi"}}).encode(), "expect": 200},
        ),
    }
    with contextlib.ExitStack() as running:
        urls = {
            name: running.enter_context(served(f, kwargs, plan.deadline_s)) for name, (f, kwargs) in servers.items()
        }
        async with contextlib.AsyncExitStack() as clients:
            cases: dict[str, Case] = {
                name: await load_case(clients, raw_driver, urls[server], path, headers,
                                      requests=plan.http_requests, connections=plan.http_connections, **request)
                for name, (server, path, headers, request) in targets.items()
            }  # fmt: skip
            return await compare(cases, plan.rounds)


async def section_http(db: BenchDatabase, plan: GatePlan, console: Console) -> None:
    settings = settings_kwargs(db)
    key = await install_echo_policy(settings)
    results = await bench_http(settings, key, plan)
    report(console, f"2. HTTP via the raw client: 1 uvicorn worker, {plan.http_connections} keep-alive connections, "
                    f"{plan.http_requests:,} req/round", results, baseline="bare FastAPI GET /noop")  # fmt: skip
    call, whoami = results["tenantgate POST /v1/tools/echo@v1/call"], results["tenantgate GET /v1/whoami"]
    console.print(f"  tool call / whoami: rps {call.rate / whoami.rate:.2f}x, p50 {call.p50 / whoami.p50:.2f}x")


# --- main --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


async def run_all(db: BenchDatabase, plan: GatePlan, console: Console) -> None:
    summarize(console, await section_decisions(plan, console))
    await section_http(db, plan, console)


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    machine = [
        f"{cpu_model()}; cedarpy {importlib.metadata.version('cedarpy')}",
        "garbage collection on, gc.collect() before each case",
        f"load average (1 min) at start: {os.getloadavg()[0]:.2f} (other work on the machine shows in the tails)",
    ]
    with discarded_logs(), bench_database() as db:  # log lines are rendered as in production, then discarded
        header(console, "tenantgate gate benchmarks", plan, quick, describe(db), *machine)
        uvloop.run(run_all(db, plan, console))  # the loop uvicorn serves on
    load = os.getloadavg()[0]
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s, load average (1 min) {load:.2f}[/dim]")


if __name__ == "__main__":
    main()
