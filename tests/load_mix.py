"""The traffic of a load run: several tenants at once, a weighted mix of operations, bounded in time and requests.

Each tenant runs ``concurrency`` tasks; each task picks operations by weight (a seeded random, so
runs are alike) and spreads its requests over the API servers in turn. An operation is one to
three HTTP requests with the answers it must get:

- ``tool call``: ``echo@v1`` with the tenant's marker, answered 200 with the same text;
- ``denied: not granted`` / ``denied: unknown tool``: 403 from the gate;
- ``confirm, approve, run``: a charge answered 202 ``confirmation_required``, approved, called again
  with the confirmation: a directive a worker runs (the effect lands at the fake provider), answered
  with its result (200) or, if it takes longer than the tool's time, as pending (202);
- ``confirm, deny``: the same charge, denied; using the confirmation then is refused (403);
- ``webhook``: a signed Standard Webhooks delivery, recorded (``received: 1``);
- ``webhook replay``: an earlier delivery sent again, byte for byte: deduped (``duplicates: 1``);
- ``agent turn``: a message to a session; the model (fake, real wire format) calls ``echo@v1``, then replies.

Every request carries its own ``X-Request-ID``, and every answer is searched for the other
tenants' markers and ids as it arrives. `tests.load_checks` proves the rest afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tenantgate.webhooks import sign_standard
from tests.load_world import LoadTenant, World

WEIGHTS: dict[str, int] = {
    "tool call": 30,
    "denied: not granted": 8,
    "denied: unknown tool": 6,
    "confirm, approve, run": 10,
    "confirm, deny": 5,
    "webhook": 18,
    "webhook replay": 6,
    "agent turn": 12,
}

REQUESTS = {op: 3 if op.startswith("confirm") else 1 for op in WEIGHTS}  # HTTP requests each operation makes


@dataclass(frozen=True)
class Shape:
    """How much traffic: stops at ``duration_s`` or ``max_requests`` HTTP requests, whichever comes first."""

    duration_s: float
    max_requests: int
    concurrency: int = 2  # tasks per tenant, each with its own agent session (load_world's ``sessions``)
    seed: int = 11


@dataclass(frozen=True)
class Sample:
    """One operation: how long it took and whether every answer was the one it must be."""

    op: str
    seconds: float
    expected: bool
    statuses: tuple[int, ...]
    note: str = ""


@dataclass(frozen=True)
class Sent:
    """One HTTP request: whose, its request id, its answer's status, and whether the trail must hold it."""

    tenant_id: uuid.UUID
    request_id: str
    status: int
    audited: bool  # tool calls, confirmations and turns are audited under the request id; webhooks are signals


@dataclass
class Traffic:
    """Everything the run sent and saw, for the table and the checks."""

    samples: list[Sample] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    directives: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # directive id -> tenant id
    deliveries: dict[uuid.UUID, set[str]] = field(default_factory=dict)  # tenant id -> webhook ids accepted
    leaks: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Delivery:
    msg_id: str
    timestamp: int
    body: bytes
    signature: str


class _Unexpected(Exception):
    """An answer that is not the one the operation must get."""


class Mix:
    """Drives the world's tenants with the weighted mix until the shape's bounds."""

    def __init__(self, world: World, shape: Shape) -> None:
        self.world = world
        self.shape = shape
        self.traffic = Traffic(deliveries={t.id: set() for t in world.tenants})
        self._bases = itertools.cycle(world.bases)
        self._requests = 0
        self._deadline = 0.0
        self._sequence = itertools.count()
        self._delivered: dict[uuid.UUID, list[_Delivery]] = {t.id: [] for t in world.tenants}
        self._ops: dict[str, Callable[[LoadTenant, int], Awaitable[tuple[int, ...]]]] = {
            "tool call": self._tool_call,
            "denied: not granted": self._not_granted,
            "denied: unknown tool": self._unknown_tool,
            "confirm, approve, run": self._approve,
            "confirm, deny": self._deny,
            "webhook": self._webhook,
            "webhook replay": self._replay,
            "agent turn": self._turn,
        }

    async def run(self) -> Traffic:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=60, limits=limits) as self._http:
            started = time.perf_counter()
            self._deadline = time.monotonic() + self.shape.duration_s
            async with asyncio.TaskGroup() as group:
                for index, tenant in enumerate(self.world.tenants):
                    for slot in range(self.shape.concurrency):
                        seed = self.shape.seed * 1000 + index * 100 + slot
                        group.create_task(self._drive(tenant, slot, random.Random(seed)))
            self.traffic.seconds = time.perf_counter() - started
        return self.traffic

    async def _drive(self, tenant: LoadTenant, slot: int, rng: random.Random) -> None:
        names, weights = list(WEIGHTS), list(WEIGHTS.values())
        while time.monotonic() < self._deadline and self._requests < self.shape.max_requests:
            op = rng.choices(names, weights)[0]
            if self._requests + REQUESTS[op] > self.shape.max_requests:
                continue  # not enough left for this one: a shorter one may still fit
            self._requests += REQUESTS[op]  # reserved before the first await: the bound holds across tasks
            started = time.perf_counter()
            try:
                statuses = await self._ops[op](tenant, slot)
                sample = Sample(op, time.perf_counter() - started, True, statuses)
            except _Unexpected as exc:
                sample = Sample(op, time.perf_counter() - started, False, (), str(exc)[:600])
            except (httpx.HTTPError, KeyError, ValueError) as exc:  # no answer, or one without the expected shape
                sample = Sample(op, time.perf_counter() - started, False, (), f"{type(exc).__name__}: {exc}"[:300])
            self.traffic.samples.append(sample)

    # --- one request ---------------------------------------------------------------------

    async def _send(
        self, tenant: LoadTenant, path: str, body: Any = None, *, audited: bool = True, **options: Any
    ) -> httpx.Response:
        request_id = f"load-{uuid.uuid4().hex}"
        headers = {**tenant.headers(), "X-Request-ID": request_id, **options.pop("headers", {})}
        response = await self._http.post(f"{next(self._bases)}{path}", json=body, headers=headers, **options)
        self.traffic.sent.append(Sent(tenant.id, request_id, response.status_code, audited))
        self._look_for_leaks(tenant, path, response.text)
        return response

    def _look_for_leaks(self, tenant: LoadTenant, path: str, text: str) -> None:
        for other in self.world.tenants:
            if other.id != tenant.id and any(trace in text for trace in other.traces):
                self.traffic.leaks.append(f"{tenant.marker} saw {other.marker}'s data from {path}")

    @staticmethod
    def _expect(response: httpx.Response, code: int, /, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = response.json() if response.content else {}
        wrong = {k: body.get(k) for k, v in fields.items() if body.get(k) != v}
        if response.status_code != code or wrong:
            raise _Unexpected(f"{response.request.url.path}: {response.status_code} {response.text[:500]}")
        return body

    # --- the operations ------------------------------------------------------------------

    async def _tool_call(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        text = f"{tenant.marker} #{next(self._sequence)}"
        answer = await self._send(tenant, "/v1/tools/echo@v1/call", {"arguments": {"text": text}})
        if self._expect(answer, 200)["output"] != {"text": text}:
            raise _Unexpected(f"echo answered {answer.text[:200]}")
        return (answer.status_code,)

    async def _not_granted(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        answer = await self._send(tenant, "/v1/tools/memory_wipe@v1/call", {"arguments": {"scope": tenant.marker}})
        self._expect(answer, 403)
        return (answer.status_code,)

    async def _unknown_tool(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        answer = await self._send(tenant, "/v1/tools/no_such_tool@v1/call", {"arguments": {"x": tenant.marker}})
        self._expect(answer, 403)
        return (answer.status_code,)

    async def _confirmation(self, tenant: LoadTenant) -> tuple[dict[str, Any], str, httpx.Response]:
        arguments = {"url": self.world.payments_url, "amount": 100 + next(self._sequence)}
        asked = await self._send(tenant, "/v1/tools/charge@v1/call", {"arguments": arguments})
        pending = self._expect(asked, 202, code="confirmation_required")
        return arguments, pending["confirmation_id"], asked

    async def _approve(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        arguments, confirmation, asked = await self._confirmation(tenant)
        approved = await self._send(tenant, f"/v1/confirmations/{confirmation}/approve")
        self._expect(approved, 200, status="approved")
        body = {"arguments": arguments, "confirmation_id": confirmation}
        ran = await self._send(tenant, "/v1/tools/charge@v1/call", body)
        # A worker runs it; the API answers with the result if it came within the tool's time, else 202 pending.
        done = ran.status_code == 200
        directive = self._expect(ran, 200 if done else 202, outcome="succeeded" if done else "pending")["directive_id"]
        self.traffic.directives[uuid.UUID(directive)] = tenant.id
        return asked.status_code, approved.status_code, ran.status_code

    async def _deny(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        arguments, confirmation, asked = await self._confirmation(tenant)
        denied = await self._send(tenant, f"/v1/confirmations/{confirmation}/deny")
        self._expect(denied, 200, status="denied")
        body = {"arguments": arguments, "confirmation_id": confirmation}
        refused = await self._send(tenant, "/v1/tools/charge@v1/call", body)
        self._expect(refused, 403, code="confirmation_invalid")
        return asked.status_code, denied.status_code, refused.status_code

    async def _deliver(self, tenant: LoadTenant, delivery: _Delivery) -> httpx.Response:
        headers = {
            "webhook-id": delivery.msg_id,
            "webhook-timestamp": str(delivery.timestamp),
            "webhook-signature": delivery.signature,
            "content-type": "application/json",
        }
        path = f"/v1/webhooks/standard/{tenant.endpoint_id}"
        return await self._send(tenant, path, audited=False, content=delivery.body, headers=headers)

    async def _webhook(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = int(time.time())
        event = {"type": "load.event", "timestamp": now, "data": {"marker": tenant.marker, "n": next(self._sequence)}}
        body = json.dumps(event).encode()
        delivery = _Delivery(msg_id, now, body, sign_standard(tenant.webhook_secret, msg_id, now, body))
        answer = await self._deliver(tenant, delivery)
        self._expect(answer, 200, received=1, duplicates=0)
        self.traffic.deliveries[tenant.id].add(msg_id)
        self._delivered[tenant.id].append(delivery)
        return (answer.status_code,)

    async def _replay(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        earlier = self._delivered[tenant.id]
        if not earlier:
            return await self._webhook(tenant, slot)
        answer = await self._deliver(tenant, earlier[len(earlier) // 2])
        self._expect(answer, 200, received=0, duplicates=1)
        return (answer.status_code,)

    async def _turn(self, tenant: LoadTenant, slot: int) -> tuple[int, ...]:
        said = f"{tenant.marker} turn {next(self._sequence)}"
        session = tenant.sessions[slot % len(tenant.sessions)]
        answer = await self._send(tenant, f"/v1/sessions/{session}/messages", {"content": said})
        self._expect(answer, 200, status="completed", reply=f"Done: {said}")
        return (answer.status_code,)
