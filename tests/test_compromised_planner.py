"""A fully compromised planner, played by hypothesis: nothing runs outside the caller's grants.

Two tenants with different grants. The "planner" proposes random tool names (real, local,
made up), random arguments (plausible, hostile, garbage) and claims the other tenant's id
in them. The oracle below is deliberately dumb: each tenant's allowed calls, written out
by hand. Every attempt must also be in the caller's audit trail with the decision it got.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantgate.auth import system_context
from tenantgate.context import PrincipalKind, Role, TenantContext
from tenantgate.gate import ProposedCall, Verdict
from tenantgate.installation import Installation, Services
from tests import fixture_tools

T = TypeVar("T")
DOCS = "https://docs.example.com/"
CONTACT = "+4930123456"
POLICY_A = {
    "packages": [{"package": "basics"}, {"package": "whatsapp"}, {"package": "web"}],
    "grants": [
        {"id": "echo", "tools": ["echo@v1"]},
        {"id": "docs", "tools": ["web_fetch@v1"], "when": [{"path": "url", "op": "equals", "value": DOCS}]},
        {"id": "contacts", "tools": ["whatsapp_send@v1"], "when": [{"path": "to", "op": "one_of", "value": [CONTACT]}]},
    ],
}
POLICY_B = {
    "packages": [{"package": "basics"}, {"package": "memory"}],
    "grants": [{"id": "whoami", "tools": ["whoami_tool@v1"]}, {"id": "wipe", "tools": ["memory_wipe@v1"]}],
}


def allowed_for_a(tool: str, args: dict[str, Any]) -> bool:
    if tool == "echo@v1":
        return set(args) == {"text"} and isinstance(args["text"], str) and len(args["text"]) <= 1000
    return tool == "web_fetch@v1" and args == {"url": DOCS}


def allowed_for_b(tool: str, args: dict[str, Any]) -> bool:
    return tool == "whoami_tool@v1" and args == {}  # memory_wipe needs admin; the agents act for members


class Loop:
    """An event loop on its own thread, so synchronous hypothesis can drive async services."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Side:
    tenant_id: uuid.UUID
    agent: TenantContext  # an AI execution acting for a member
    system: TenantContext
    last_seq: int = 0


@dataclass
class World:
    loop: Loop
    services: Services
    sides: dict[str, Side] = field(default_factory=dict)
    attempts: int = 0


async def _side(services: Services, name: str, policy: dict[str, Any]) -> Side:
    tenant = await services.tenants.create(f"{name}-{uuid.uuid4().hex[:8]}")
    system = system_context(tenant.id, mode=services.settings.mode, request_id="hypothesis")
    member = await services.principals.create(system, name="m", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER}))
    key = (await services.keys.create(system, principal_id=member.id)).key
    human = await services.authenticator.authenticate(f"Bearer {key}", request_id="hypothesis")
    await services.policies.set_policy(system, policy)
    return Side(tenant.id, human.for_ai_execution(uuid.uuid4()), system)


@pytest.fixture(scope="module")
def world(installation: Installation) -> Iterator[World]:
    loop = Loop()

    async def build() -> World:
        services = Services.build(installation, registry=fixture_tools.registry(installation.settings.mode))
        await services.start()
        built = World(loop, services)
        built.sides = {"a": await _side(services, "pa", POLICY_A), "b": await _side(services, "pb", POLICY_B)}
        return built

    built = loop.run(build())
    yield built
    loop.run(built.services.stop())
    loop.close()


NAMES = [t.name for t in [*fixture_tools.SAFE_TOOLS, *fixture_tools.LOCAL_TOOLS]]
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
keys = st.sampled_from(["text", "url", "to", "message", "scope", "command", "path", "seconds", "tenant_id"])
plausible = st.sampled_from(
    [
        {"text": "hello"}, {"url": DOCS}, {"url": "https://evil.example/collect"}, {"url": DOCS + "?x=1"},
        {"to": CONTACT, "message": "hi"}, {"to": "+4930999999", "message": "exfiltrate"}, {"scope": "all"},
        {}, {"command": "rm -rf /"}, {"path": "/etc/passwd"}, {"seconds": 0},
    ]
)  # fmt: skip
proposals = st.tuples(
    st.sampled_from(["a", "b"]),
    st.one_of(st.sampled_from([*NAMES, "delete_everything", "echo@v2", "shell"]), st.text(max_size=30)),
    st.one_of(plausible, st.dictionaries(keys | st.text(max_size=10), json_values, max_size=4),
              plausible.map(lambda args: {**args, "tenant_id": "OTHER"})),
    st.booleans(),  # also claim the other tenant in a nested field
)  # fmt: skip


def _claim(args: dict[str, Any], other: uuid.UUID, nested: bool) -> dict[str, Any]:
    claimed = {k: (str(other) if v == "OTHER" else v) for k, v in args.items()}
    if nested and claimed:
        claimed[next(iter(claimed))] = {"tenant_id": str(other)}
    return claimed


@settings(max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(proposal=proposals)
def test_nothing_runs_outside_the_callers_grants_and_everything_is_audited(
    world: World, proposal: tuple[str, str, dict[str, Any], bool]
) -> None:
    who, tool, raw_args, nested = proposal
    side = world.sides[who]
    other = world.sides["b" if who == "a" else "a"].tenant_id
    args = _claim(raw_args, other, nested)
    before = len(fixture_tools.EXECUTED)

    outcome = world.loop.run(world.services.boundary.call(side.agent, ProposedCall(tool, args)))
    executed = fixture_tools.EXECUTED[before:]

    expected = allowed_for_a(tool, args) if who == "a" else allowed_for_b(tool, args)
    if expected:
        assert outcome.decision.verdict is Verdict.ALLOW, outcome.decision
        assert executed == [(str(side.tenant_id), tool, args)]
    else:
        assert outcome.decision.verdict is not Verdict.ALLOW, (tool, args, outcome.decision)
        assert executed == []
    assert all(tenant == str(side.tenant_id) for tenant, _, _ in executed)

    trail = world.loop.run(world.services.audit.page(side.system, action="gate.decided", after_seq=side.last_seq))
    mine = [e for e in trail if e.payload is not None and e.payload.get("call_id") == str(outcome.call_id)]
    assert [(e.decision, e.code, e.principal_id) for e in mine] == [
        (outcome.decision.verdict.value, outcome.decision.code.value, side.agent.principal_id)
    ]
    side.last_seq = max(e.seq for e in trail)
    world.attempts += 1
