"""Faults under load: a dependency fails while tenants keep calling, and nothing is allowed that was not checked.

A cluster of 2 API processes and 2 workers (``tests/cluster.py``) on a PostgreSQL, a
``redis-server`` and a key provider (Vault transit, faked on loopback) that this module owns
and really stops: never the shared servers. Light background load from several tenants, to
whichever API process is alive: allowed tool calls, denied ones, directives run by the
workers against a payment provider that honours Idempotency-Key, and calls that open a
credential. For each fault, injected during the load:

- every answer while it lasts is the refusal we expect (503 with the dependency's code and
  ``Retry-After``), never a 2xx for something that could not be checked, never a 500;
- once the dependency is back, the same processes serve again within a bound, unrestarted;
- nothing accepted was lost: every 2xx call has its audit event, every accepted directive
  ends succeeded with exactly one effect at the provider, and every tenant's chain verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import psycopg
import pytest
import sqlalchemy as sa

from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import PrincipalKind, Role
from tenantgate.errors import DatabaseUnavailable
from tenantgate.installation import Installation, Services
from tenantgate.quotas import Limits
from tests.cluster import Cluster, ClusterConfig, Node
from tests.fake_transit import FakeTransit
from tests.fakes.payments import FakePayments
from tests.fakes.server import FakeServer
from tests.faults import OwnedPostgres, OwnedRedis

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed: the Redis fault needs one to stop"
)

PLUGINS = ("tests.fixture_tools:PLUGIN", "tests.directive_tools:PLUGIN", "tests.fault_tools:PLUGIN")
POLICY: dict[str, Any] = {
    "packages": [{"package": "plugin-basics"}, {"package": "payments"}, {"package": "credential-probes"}],
    "grants": [{"id": "load", "tools": ["echo@v1", "charge@v1", "credential_probe@v1"]}],
}
SECRET = {"api_key": "sk-live-" + "f" * 32}
OPS = ("allowed", "denied", "directive", "credential")
UNAVAILABLE = 503
WARM_S = 1.5  # load before each fault
FAULT_S = 3.0  # how long each fault lasts
RESUME_WITHIN_S = 20.0  # the bound for service to come back on its own
SETTLE_S = 30.0  # for directives accepted before a fault to reach a final state
CONCURRENCY = 4  # background request loops


@dataclass(frozen=True)
class LoadTenant:
    id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass(frozen=True)
class Request:
    """A tool call as the load sends it; directives carry an Idempotency-Key."""

    tool: str
    arguments: dict[str, Any]
    key: str | None = None


@dataclass(frozen=True)
class Answer:
    """One request of the load and what it got (``status`` 0: the connection failed)."""

    op: str
    tenant: LoadTenant
    request: Request
    api: str
    started: float
    ended: float
    status: int
    code: str | None
    retry_after: str | None
    call_id: str | None
    directive_id: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class World:
    pg: OwnedPostgres
    redis: OwnedRedis
    transit: FakeTransit
    transit_port: int
    payments: FakePayments
    pay_port: int
    services: Services  # the test's own view of the installation, for setup and checks
    cluster: Cluster
    tenants: list[LoadTenant]
    # The API processes a load balancer would send to: those that answered /healthz (and still live).
    serving: list[Node]
    seen: list[LoadTenant] = field(default_factory=list)  # every tenant any load used, for the chain checks


# --- the world: owned dependencies, a cluster, tenants -----------------------------------------


@pytest.fixture(scope="module")
def owned() -> Iterator[tuple[OwnedPostgres, OwnedRedis, FakeTransit]]:
    pg, redis, transit = OwnedPostgres(), OwnedRedis(), FakeTransit()
    try:
        pg.start()
        redis.start()
        transit.start()
        yield pg, redis, transit
    finally:
        transit.stop()
        redis.close()
        pg.close()


@pytest.fixture(scope="module")
async def world(
    owned: tuple[OwnedPostgres, OwnedRedis, FakeTransit], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    pg, redis, transit = owned
    assert pg.urls is not None
    root = tmp_path_factory.mktemp("faults")  # the processes' logs stay there after a failure
    payments = FakePayments()
    provider = {
        "key_provider": "vault_transit", "vault_addr": transit.url, "vault_token": transit.token,
        "key_provider_timeout_s": 2,
    }  # fmt: skip
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        mode="saas", database_url=pg.urls.app, admin_database_url=pg.urls.admin, owner_database_url=pg.urls.owner,
        db_role_prefix=pg.roles.owner.removesuffix("_owner"), pepper="faults-pepper-" + "q" * 40, jwt_issuers=(),
        redis_url=redis.url, plugins=PLUGINS, directives="queue", data_dir=root / "test", **provider,
    )  # fmt: skip
    services = Services.build(Installation.open(settings, migrate_schema=False))
    async with FakeServer(payments) as pay:
        config = ClusterConfig.of(
            settings,
            plugins=PLUGINS,
            redis_url=redis.url,
            # The workers are the real worker loop with the test tools and an egress door open to the
            # fake provider's port (tests/directive_worker.py); the API processes are `tenantgate serve`.
            worker_command=("-m", "tests.directive_worker", str(pay.port)),
            env={
                "TENANTGATE_KEY_PROVIDER": "vault_transit",
                "TENANTGATE_VAULT_ADDR": transit.url,
                "TENANTGATE_VAULT_TOKEN": transit.token,
                "TENANTGATE_KEY_PROVIDER_TIMEOUT_S": "2",
                "TENANTGATE_WORKER_HEARTBEAT_S": "0.5",
                "TENANTGATE_WORKER_STALLED_AFTER_S": "2",
                # Two cores shared with other test runs: the default 0.5 s Redis timeout trips on CPU
                # starvation alone (a refusal, correctly, but not the fault under test).
                "TENANTGATE_QUOTA_BACKEND_TIMEOUT_S": "2",
            },
        )
        cluster = Cluster(config, root)
        try:
            tenants = [await _tenant(services, f"load{i}") for i in range(3)]
            serving = await asyncio.to_thread(cluster.start_apis, 2)
            cluster.start_workers(2)
            await asyncio.to_thread(wait_for_workers, pg, 2)
            transit_port = int(transit.url.rsplit(":", 1)[1])
            yield World(pg, redis, transit, transit_port, payments, pay.port, services, cluster, tenants, serving)
        finally:
            await asyncio.to_thread(cluster.stop)
            await services.stop()


def wait_for_workers(pg: OwnedPostgres, count: int) -> None:
    """Until ``count`` workers beat in the queue's table: a worker starting while the database is down
    exits (its supervisor restarts it), so the faults begin only once they all serve."""
    deadline = time.monotonic() + 90
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM procrastinate.procrastinate_workers"
                " WHERE last_heartbeat > now() - interval '1 second'"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            assert time.monotonic() < deadline, f"only {row} of {count} workers came up"
            time.sleep(0.2)


async def _tenant(services: Services, name: str) -> LoadTenant:
    """A tenant with the load's policy, an owner key and a credential ``crm``, sealed by this process."""
    tenant = await services.tenants.create(f"{name}-{uuid.uuid4().hex[:8]}")
    system = system_context(tenant.id, mode=services.settings.mode, request_id="faults")
    owner = await services.principals.create(
        system, name="owner", kind=PrincipalKind.USER, roles=frozenset({Role.OWNER})
    )
    await services.policies.set_policy(system, POLICY)
    # Limits far above the load: a refusal here is the fault's, not a spent quota. Every request
    # still counts in Redis (and is refused when it cannot be counted).
    await services.quotas.plans.set_tenant(tenant.id, overrides=dict.fromkeys(Limits.model_fields, 10**9))
    await services.credentials.create(system, name="crm", kind="api_key", secret=SECRET)
    return LoadTenant(tenant.id, (await services.keys.create(system, principal_id=owner.id)).key)


# --- the load -------------------------------------------------------------------------------------


class Load:
    """Light background traffic from ``tenants`` to whichever API processes are alive, recorded."""

    def __init__(self, world: World, tenants: list[LoadTenant] | None = None) -> None:
        self.world = world
        self.tenants = tenants or world.tenants
        self.answers: list[Answer] = []
        self.credential_tenants: list[LoadTenant] | None = None  # who opens credentials, if not ``tenants``
        self._stop = asyncio.Event()
        self._turn = itertools.count()
        world.seen.extend(t for t in self.tenants if t not in world.seen)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=15) as http:
            await asyncio.gather(*(self._loop(http, i) for i in range(CONCURRENCY)))

    def stop(self) -> None:
        self._stop.set()

    async def _loop(self, http: httpx.AsyncClient, lane: int) -> None:
        while not self._stop.is_set():
            n = next(self._turn)
            op = OPS[(n + lane) % len(OPS)]
            tenants = self.credential_tenants if op == "credential" and self.credential_tenants else self.tenants
            tenant = tenants[n % len(tenants)]
            apis = [node for node in self.world.serving if node.alive]
            if apis:
                self.answers.append(await self._one(http, apis[n % len(apis)], op, tenant, self._request(op, n)))
            await asyncio.sleep(0.02)

    def _request(self, op: str, n: int) -> Request:
        if op == "allowed":
            return Request("echo@v1", {"text": f"load #{n}"})
        if op == "denied":
            return Request("nope@v1", {})
        if op == "directive":
            url = f"http://127.0.0.1:{self.world.pay_port}/v1/charges"
            return Request("charge@v1", {"url": url, "amount": n + 1}, f"load-{uuid.uuid4()}")
        return Request("credential_probe@v1", {"name": "crm"})

    async def _one(self, http: httpx.AsyncClient, api: Node, op: str, tenant: LoadTenant, request: Request) -> Answer:
        headers = {**tenant.headers, **({"Idempotency-Key": request.key} if request.key else {})}
        started = time.monotonic()
        try:
            response = await http.post(
                f"{api.url}/v1/tools/{request.tool}/call", json={"arguments": request.arguments}, headers=headers
            )
        except httpx.TransportError:
            return Answer(op, tenant, request, api.name, started, time.monotonic(), 0, None, None, None, None)
        body = response.json()
        return Answer(
            op, tenant, request, api.name, started, time.monotonic(), response.status_code,
            body.get("code") if response.status_code >= 300 else None, response.headers.get("retry-after"),
            body.get("call_id"), body.get("directive_id"),
        )  # fmt: skip

    async def resend_refused_directives(self) -> list[Answer]:
        """What a client does with a 503 and ``Retry-After``: send the directive again under its key
        (again after a pause while it is still refused: pooled connections may meet the fault once)."""
        refused = [a for a in self.answers if a.op == "directive" and a.status == UNAVAILABLE]

        async def resend(http: httpx.AsyncClient, first: Answer) -> Answer:
            for _ in range(10):
                answer = await self._one(http, self.world.serving[0], "directive", first.tenant, first.request)
                if answer.status != UNAVAILABLE:
                    break
                await asyncio.sleep(0.5)
            return answer

        async with httpx.AsyncClient(timeout=15) as http:
            again = await asyncio.gather(*(resend(http, a) for a in refused))
        self.answers.extend(again)
        return list(again)

    def during(self, start: float, end: float) -> list[Answer]:
        """Answers to requests sent after ``start`` and answered before ``end``."""
        return [a for a in self.answers if a.started >= start and a.ended <= end]

    async def resumed(self, after: float, ops: tuple[str, ...] = OPS) -> float:
        """Seconds from ``after`` until every op in ``ops`` has had its normal answer again; fails past the bound."""
        normal = {"allowed": 200, "denied": 403, "directive": 200, "credential": 200}
        while True:
            back = {a.op for a in self.answers if a.started >= after and a.status == normal[a.op]}
            if set(ops) <= back:
                return time.monotonic() - after
            assert time.monotonic() - after < RESUME_WITHIN_S, (
                f"service did not resume within {RESUME_WITHIN_S} s: back {sorted(back)}; "
                f"last answers {self.answers[-8:]}\n{self.world.cluster.logs()[-4000:]}"
            )
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def load(world: World, tenants: list[LoadTenant] | None = None) -> AsyncIterator[Load]:
    """Background load for the block; afterwards every answer passes the checks that hold at all times."""
    traffic = Load(world, tenants)
    task = asyncio.create_task(traffic.run())
    try:
        await asyncio.sleep(WARM_S)
        yield traffic
    finally:
        traffic.stop()
        await task
    again = await traffic.resend_refused_directives()
    assert all(a.ok for a in again), [a for a in again if not a.ok][:5]
    assert_never_allowed_unchecked(traffic.answers)


def assert_never_allowed_unchecked(answers: list[Answer]) -> None:
    assert answers, "the load sent nothing"
    for a in answers:
        assert a.status not in (500, 502), a  # a 500 is a bug; a 502 would blame a tool for a platform fault
        if a.op == "denied":
            assert not a.ok, a  # a call the policy refuses is never allowed, whatever is down
        if a.status == UNAVAILABLE:
            assert a.retry_after == "5", a


def assert_refused(answers: list[Answer], codes: set[str]) -> None:
    assert answers, "no request was answered during the fault"
    wrong = [a for a in answers if a.status != UNAVAILABLE or a.code not in codes]
    assert not wrong, wrong[:5]


# --- nothing accepted is lost ---------------------------------------------------------------------


async def rows(world: World, query: str, **params: Any) -> list[Any]:
    """Rows of an admin query. After a restart this process's pooled connections are dead: the first
    use is refused (``DatabaseUnavailable``, the pool drops them) and the next one connects afresh."""
    for _ in range(3):
        try:
            async with world.services.db.admin() as conn:
                return list((await conn.execute(sa.text(query), params)).all())
        except DatabaseUnavailable:
            await asyncio.sleep(0.2)
    raise AssertionError("the database did not come back for the checks")


async def assert_nothing_lost(world: World, answers: list[Answer]) -> None:
    """Every 2xx call has its audit event; every accepted directive succeeded once; every chain verifies."""
    accepted = [a for a in answers if a.ok]
    assert accepted
    ids = [t.id for t in world.seen]
    directives = {uuid.UUID(a.directive_id) for a in accepted if a.directive_id}
    deadline = time.monotonic() + SETTLE_S
    audited = {
        row[0]
        for row in await rows(
            world,
            "SELECT payload->>'call_id' FROM tenantgate.audit_events WHERE tenant_id = ANY(:ids)"
            " AND action IN ('tool.executed', 'tool.deferred')",
            ids=ids,
        )
    }
    missing = [a for a in accepted if a.call_id not in audited]
    assert not missing, missing[:5]
    while True:  # accepted directives (and any others) reach a final state
        found = await rows(world, "SELECT id, status FROM tenantgate.directives WHERE tenant_id = ANY(:ids)", ids=ids)
        status = {row.id: row.status for row in found}
        if all(s in {"succeeded", "failed", "canceled"} for s in status.values()):
            break
        assert time.monotonic() < deadline, [row for row in found if row.status not in {"succeeded", "failed"}][:5]
        await asyncio.sleep(0.2)
    assert directives <= set(status), directives - set(status)
    assert {status[d] for d in directives} <= {"succeeded"}, [(d, status[d]) for d in directives]
    effects = world.payments.effects
    assert all(effects.get(str(d)) == 1 for d in directives), [(d, effects.get(str(d))) for d in directives]
    assert set(effects.values()) <= {1}  # no key ever charged twice
    for tenant in world.seen:
        report = await world.services.audit.verify(tenant.id)
        assert report.ok, report


async def _at(action: Callable[[], Any]) -> float:
    """Run a blocking fault action off the loop (the load keeps going); the moment it finished."""
    await asyncio.to_thread(action)
    return time.monotonic()


# --- the faults -----------------------------------------------------------------------------------


async def test_a_postgresql_restart_refuses_everything_then_service_resumes(world: World) -> None:
    async with load(world) as traffic:
        down = await _at(lambda: world.pg.stop("fast"))
        await asyncio.sleep(FAULT_S)
        restoring = time.monotonic()  # the window ends here: a request may meet the server coming back
        up = await _at(world.pg.start)
        took = await traffic.resumed(up)
        # This process's own pools meet the restart only now: the first use of each is refused
        # once, as in any process, and the next one connects afresh.
        with contextlib.suppress(DatabaseUnavailable):
            await world.services.db.ping()
        await rows(world, "SELECT 1")
    during = traffic.during(down, restoring)
    # Authentication is the first database work: most get database_unavailable; a request caught
    # between steps may see the policy or the budget counter fail instead. All 503, all refusals.
    assert_refused(during, {"database_unavailable", "policy_unavailable", "quota_backend_unavailable"})
    assert {a.api for a in during} == {"api1", "api2"}
    assert took < RESUME_WITHIN_S
    assert len(world.cluster.apis) == 2  # nobody was restarted
    assert len(world.cluster.workers) == 2
    await assert_nothing_lost(world, traffic.answers)


async def test_redis_stopped_refuses_rate_limited_routes_then_service_resumes(world: World) -> None:
    async with load(world) as traffic:
        down = await _at(world.redis.stop)
        await asyncio.sleep(FAULT_S)
        restoring = time.monotonic()
        up = await _at(world.redis.start)
        await traffic.resumed(up)
    during = traffic.during(down, restoring)
    # Every authenticated route counts against the key's and the tenant's per-minute limits.
    assert_refused(during, {"quota_backend_unavailable"})
    assert len(world.cluster.apis) == 2
    await assert_nothing_lost(world, traffic.answers)


async def test_the_key_provider_unreachable_refuses_credential_use_then_resumes(world: World) -> None:
    # From the fault on, credentials are opened by tenants whose data keys no API process has
    # unwrapped: a process keeps an unwrapped key for a few minutes, so the tenants it served a
    # moment ago ride out a short outage (see README, "Faults and what clients see").
    cold = [await _tenant(world.services, f"cold{i}") for i in range(2)]
    world.seen.extend(cold)
    async with load(world) as traffic:
        down = await _at(world.transit.stop)
        traffic.credential_tenants = cold
        await asyncio.sleep(FAULT_S)
        restoring = time.monotonic()
        up = await _at(lambda: world.transit.start(world.transit_port))
        await traffic.resumed(up)
    during = traffic.during(down, restoring)
    assert_refused([a for a in during if a.op == "credential"], {"key_provider_unavailable"})
    # Everything that needs no key goes on as usual.
    others = [a for a in during if a.op != "credential"]
    assert others
    assert all(a.status == (403 if a.op == "denied" else 200) for a in others), others[:5]
    await assert_nothing_lost(world, traffic.answers)
    ((failed,),) = await rows(
        world,
        "SELECT count(*) FROM tenantgate.audit_events WHERE tenant_id = ANY(:ids)"
        " AND action = 'credential.used' AND decision = 'failed' AND code = 'key_provider_unavailable'",
        ids=[t.id for t in cold],
    )
    assert failed >= len([a for a in during if a.op == "credential"])  # each refusal is on the record


async def test_a_worker_killed_mid_directive_leaves_the_other_to_finish_it_exactly_once(world: World) -> None:
    killed: list[Node] = []

    def kill_the_worker_that_charged() -> None:
        # The provider has made the charge and not answered yet: the worker waiting on this very
        # connection dies before it can record the outcome, the worst moment for a crash.
        if killed:
            return
        for node in world.cluster.workers:
            connections = psutil.Process(node.pid).net_connections(kind="tcp")
            if any(c.raddr and c.raddr[1] == world.pay_port for c in connections):
                os.kill(node.pid, signal.SIGKILL)
                killed.append(node)
                return

    world.payments.on_effect = kill_the_worker_that_charged
    try:
        async with load(world) as traffic:
            deadline = time.monotonic() + RESUME_WITHIN_S
            while not killed:
                assert time.monotonic() < deadline, "no worker was caught mid-directive"
                await asyncio.sleep(0.05)
            died = time.monotonic()
            await asyncio.sleep(FAULT_S)
            await traffic.resumed(died, ("directive",))
    finally:
        world.payments.on_effect = None
    (victim,) = killed
    assert await asyncio.to_thread(victim.process.wait, 30) == -signal.SIGKILL
    assert len(world.cluster.workers) == 1
    await assert_nothing_lost(world, traffic.answers)
    ((retried,),) = await rows(world, "SELECT count(*) FROM tenantgate.directives WHERE attempts > 1")
    assert retried >= 1  # the killed worker's directive ran again on the other, without a second charge
    await asyncio.to_thread(world.cluster.replace, victim)  # back to two for what follows
    await asyncio.to_thread(wait_for_workers, world.pg, 2)


async def test_an_api_process_killed_leaves_the_other_serving_and_loses_nothing_it_acknowledged(
    world: World,
) -> None:
    async with load(world) as traffic:
        victim, survivor = world.cluster.apis
        status = await asyncio.to_thread(world.cluster.kill, victim)
        died = time.monotonic()
        await asyncio.sleep(FAULT_S)
        await traffic.resumed(died)
        after = [a for a in traffic.answers if a.started >= died]
        replacement = await asyncio.to_thread(world.cluster.replace, victim)  # returns once healthy
        world.serving = [survivor, replacement]
        back = time.monotonic()
        while not any(a.api == replacement.name and a.ok for a in traffic.answers if a.started >= back):
            assert time.monotonic() - back < RESUME_WITHIN_S, "the replacement served nothing"
            await asyncio.sleep(0.1)
    assert status == -signal.SIGKILL
    assert after
    assert {a.api for a in after if a.ended < back} == {survivor.name}
    # The survivor serves every kind of call; a refusal there is only ever a 503 (checked for all
    # answers: never a 500, a denial never allowed), never a lost connection.
    assert all(a.status != 0 for a in after), [a for a in after if a.status == 0][:5]
    served = [a for a in after if a.ended < back]
    assert {a.op for a in served if a.status in (200, 403)} == set(OPS)
    # Requests in flight on the killed process may fail; none other did.
    failed = [a for a in traffic.answers if a.status == 0]
    assert all(a.api == victim.name and a.started < died for a in failed), failed
    assert replacement.port == victim.port
    await assert_nothing_lost(world, traffic.answers)
