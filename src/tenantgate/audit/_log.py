"""The audit log: append-only, hash-chained per tenant, readable by the tenant, provable by the platform.

Writing:

- :meth:`AuditLog.append` inside the caller's open tenant transaction, atomic with the
  change it describes (a key created, a principal added);
- :meth:`AuditLog.record` in its own transaction, group-committed with concurrent
  records for the same tenant (gate decisions, tool outcomes, authentications);
- :meth:`AuditLog.record_as` for a tenant event with no context (a refused key whose
  tenant is known from the key row), :meth:`AuditLog.record_platform` for the platform
  chain (admin role).

Reading: :meth:`AuditLog.page` as the tenant (RLS), :meth:`AuditLog.verify`,
:meth:`AuditLog.export` and :meth:`AuditLog.erase_payload` as the platform (admin role).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit._append import append_drafts, append_many
from tenantgate.audit._canonical import PLATFORM_CHAIN, check_text
from tenantgate.audit._chain import ChainReport, ChainWalker, Draft
from tenantgate.audit._event import AuditEvent, AuditRecord
from tenantgate.audit._group import GroupCommit
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import InvalidInput, NotFound, RoleRequired
from tenantgate.logs import get_logger
from tenantgate.redact import Redactor
from tenantgate.store import TENANT_SETTING, Database, driver_of, set_local, tables

_log = get_logger("tenantgate.audit")

__all__ = ["MAX_PAGE", "AuditLog", "AuditObserver"]

# Called with each record once it is durable (after ``record``/``record_as`` commit). Metrics
# and anomaly detection subscribe here without this package knowing them (they sit above it).
AuditObserver = Callable[[AuditRecord], Awaitable[None]]

_e, _h = tables.audit_events, tables.audit_heads
MAX_PAGE = 500
_PLATFORM_ACTOR_KIND = "platform_key"
_ENTER_PLATFORM = set_local(TENANT_SETTING, PLATFORM_CHAIN)


def _writer_context(tenant_id: uuid.UUID) -> TenantContext:
    # Opens the chain's tenant transaction for a batch, and nothing else: it holds no role,
    # so it authorises nothing even if it leaked. Events carry their own principals.
    return TenantContext(
        tenant_id=tenant_id,
        principal_id=uuid.UUID(int=0),
        kind=PrincipalKind.SYSTEM,
        roles=frozenset(),
        mode=DeploymentMode.SAAS,
        request_id="audit",
    )


def _record(row: sa.Row[Any]) -> AuditRecord:
    m = row._mapping
    return AuditRecord(
        tenant_id=m["tenant_id"], seq=m["seq"], occurred_at=m["occurred_at"], action=m["action"],
        decision=m["decision"], code=m["code"], tool=m["tool"], principal_id=m["principal_id"],
        principal_kind=m["principal_kind"], acting_for=m["acting_for"], request_id=m["request_id"],
        payload=m["payload"], payload_digest=bytes(m["payload_digest"]), erased_at=m["erased_at"],
        prev_hash=bytes(m["prev_hash"]), hash=bytes(m["hash"]),
    )  # fmt: skip


def _aware(moment: datetime | None, name: str) -> None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone.")


class AuditLog:
    """One per process (group commit works within an instance); any number may share a database."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        redactor: Redactor | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        # Every payload is redacted before it is hashed and stored: evidence must not become
        # the place where a secret that slipped into a payload lives forever.
        self._redactor = redactor if redactor is not None else Redactor()
        # Two lanes: tenant chains (app role, RLS) and the platform chain (admin role).
        self._tenants = GroupCommit(write_many=self._write_tenants, write_one=self._write_tenant)
        self._platform = GroupCommit(write_many=self._write_platform_batch, write_one=self._write_platform)
        self._later: set[asyncio.Task[object]] = set()  # strong references: the loop keeps only weak ones
        self._observers: tuple[AuditObserver, ...] = ()

    def observe(self, observer: AuditObserver) -> None:
        """Call ``observer`` with every tenant record once it has committed (record, record_as).

        Events appended inside a caller's transaction (``append``) are not observed: their
        commit is the caller's. An observer that raises is logged and skipped; it never
        fails the write it observes.
        """
        self._observers = (*self._observers, observer)

    async def _observed(self, record: AuditRecord) -> AuditRecord:
        for observer in self._observers:
            try:
                await observer(record)
            except Exception as exc:  # noqa: BLE001 - observing an event must not fail the event
                _log.error("audit.observer_failed", action=record.action, error=type(exc).__name__)
        return record

    # --- writing ---------------------------------------------------------------------------

    def later(self, write: Coroutine[Any, Any, object]) -> None:
        """Run an audit write without waiting for its commit.

        For access events (authentications): a request should not wait for a commit to be
        told who it is, and a refusal should take the same time whichever chain records it.
        The write still goes through group commit within milliseconds; :meth:`drain` waits
        for every pending one (services call it on shutdown). A failure is logged, loudly.
        """
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(write)
        self._later.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[object]) -> None:
        self._later.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("audit.write_lost", error=type(task.exception()).__name__)

    async def drain(self) -> None:
        """Wait until every :meth:`later` write has committed or failed."""
        while self._later:
            await asyncio.gather(*self._later, return_exceptions=True)

    async def append(self, conn: AsyncConnection, ctx: TenantContext, event: AuditEvent) -> AuditRecord:
        """Append ``event`` inside the caller's open ``db.tenant(ctx)`` transaction: it commits with the change.

        The tenant's chain head stays locked until that transaction ends, so keep it short,
        and do not :meth:`record` for the same tenant while it is open (that would wait on it).
        """
        (record,) = await append_drafts(await driver_of(conn), ctx.tenant_id, [self._draft_for(ctx, event)])
        return record

    async def record(self, ctx: TenantContext, event: AuditEvent) -> AuditRecord:
        """Record ``event`` for ``ctx``'s tenant in its own transaction; durable when this returns."""
        record = await self._tenants.submit(ctx.tenant_id, self._draft_for(ctx, event))
        return await self._observed(record) if self._observers else record

    async def record_as(
        self,
        tenant_id: uuid.UUID,
        event: AuditEvent,
        *,
        principal_id: uuid.UUID | None = None,
        principal_kind: str | None = None,
        request_id: str | None = None,
    ) -> AuditRecord:
        """Record a tenant's event that has no context yet (a refused credential of a known tenant)."""
        if tenant_id == PLATFORM_CHAIN:
            raise InvalidInput("Platform events go through record_platform.")
        draft = self._draft(tenant_id, event, principal_id, principal_kind, None, request_id)
        record = await self._tenants.submit(tenant_id, draft)
        return await self._observed(record) if self._observers else record

    async def record_platform(
        self, event: AuditEvent, *, request_id: str | None = None, actor: uuid.UUID | None = None
    ) -> AuditRecord:
        """Record a platform event (no tenant) on the platform chain. ``actor`` is the acting platform key."""
        kind = _PLATFORM_ACTOR_KIND if actor is not None else None
        draft = self._draft(PLATFORM_CHAIN, event, actor, kind, None, request_id)
        return await self._platform.submit(PLATFORM_CHAIN, draft)

    async def append_platform(
        self,
        conn: AsyncConnection,
        event: AuditEvent,
        *,
        request_id: str | None = None,
        actor: uuid.UUID | None = None,
    ) -> AuditRecord:
        """Append a platform event inside the caller's open ``db.admin()`` transaction (tenant created, ...)."""
        kind = _PLATFORM_ACTOR_KIND if actor is not None else None
        draft = self._draft(PLATFORM_CHAIN, event, actor, kind, None, request_id)
        (record,) = await append_drafts(await driver_of(conn), PLATFORM_CHAIN, [draft])
        return record

    def _draft_for(self, ctx: TenantContext, event: AuditEvent) -> Draft:
        return self._draft(ctx.tenant_id, event, ctx.principal_id, ctx.kind.value, ctx.acting_for, ctx.request_id)

    def _draft(
        self,
        tenant_id: uuid.UUID,
        event: AuditEvent,
        principal_id: uuid.UUID | None,
        principal_kind: str | None,
        acting_for: uuid.UUID | None,
        request_id: str | None,
    ) -> Draft:
        if principal_kind is not None:
            check_text(principal_kind, "principal kind", max_length=50)
        if request_id is not None:
            check_text(request_id, "request id", max_length=200)
        now = self._clock()
        _aware(now, "The audit clock's time")
        return Draft(
            tenant_id, now.astimezone(UTC), self._redacted(event), principal_id, principal_kind, acting_for, request_id
        )

    def _redacted(self, event: AuditEvent) -> AuditEvent:
        payload = self._redactor.redact(event.payload)
        if payload is event.payload:
            return event
        return AuditEvent(event.action, event.decision, event.code, event.tool, payload)

    async def _write_tenants(
        self, batches: Mapping[uuid.UUID, Sequence[Draft]]
    ) -> tuple[dict[uuid.UUID, list[AuditRecord]], set[uuid.UUID]]:
        async with self._db.tenant(_writer_context(next(iter(batches)))) as conn:
            return await append_many(await driver_of(conn), batches)

    async def _write_tenant(self, chain: uuid.UUID, drafts: Sequence[Draft]) -> list[AuditRecord]:
        async with self._db.tenant(_writer_context(chain)) as conn:
            return await append_drafts(await driver_of(conn), chain, drafts)

    async def _write_platform(self, chain: uuid.UUID, drafts: Sequence[Draft]) -> list[AuditRecord]:
        async with self._db.admin() as conn:
            return await append_drafts(await driver_of(conn), chain, drafts)

    async def _write_platform_batch(
        self, batches: Mapping[uuid.UUID, Sequence[Draft]]
    ) -> tuple[dict[uuid.UUID, list[AuditRecord]], set[uuid.UUID]]:
        async with self._db.admin() as conn:
            # The same statements as a tenant batch, whose transaction starts by entering the
            # tenant: a refused key costs the same whether its prefix names a tenant (tenant
            # chain) or not (this chain), so response times do not tell which prefixes exist.
            driver = await driver_of(conn)
            await driver.execute(_ENTER_PLATFORM)
            return await append_many(driver, batches)

    # --- reading as the tenant ---------------------------------------------------------------

    async def page(
        self,
        ctx: TenantContext,
        *,
        action: str | None = None,
        decision: str | None = None,
        principal_id: uuid.UUID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """``ctx``'s tenant's events in seq order, filtered; page on with ``after_seq`` = the last seq seen."""
        if not ctx.has_any_role(Role.OWNER, Role.ADMIN):
            raise RoleRequired("Reading the audit log needs the owner or admin role.", required=["owner", "admin"])
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit is between 1 and {MAX_PAGE}.")
        _aware(since, "since")
        _aware(until, "until")
        query = sa.select(_e).where(_e.c.tenant_id == ctx.tenant_id).order_by(_e.c.seq).limit(limit)
        filters = {
            _e.c.action: action, _e.c.decision: decision, _e.c.principal_id: principal_id,
        }  # fmt: skip
        for column, value in filters.items():
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(_e.c.occurred_at >= since)
        if until is not None:
            query = query.where(_e.c.occurred_at < until)
        if after_seq is not None:
            query = query.where(_e.c.seq > after_seq)
        async with self._db.tenant(ctx) as conn:
            return [_record(r) for r in await conn.execute(query)]

    # --- the platform's view -----------------------------------------------------------------

    async def verify(self, tenant_id: uuid.UUID) -> ChainReport:
        """Walk one chain (a tenant's, or :data:`PLATFORM_CHAIN`) from genesis to its head."""
        walker = ChainWalker(tenant_id)
        async with self._db.admin() as conn:
            # One snapshot for the head and the events: a concurrent append is either wholly
            # in it or wholly out, never a head ahead of the events read.
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            head = (await conn.execute(sa.select(_h.c.seq, _h.c.hash).where(_h.c.tenant_id == tenant_id))).first()
            query = sa.select(_e).where(_e.c.tenant_id == tenant_id).order_by(_e.c.seq)
            async with conn.stream(query.execution_options(yield_per=1000)) as result:
                async for row in result:
                    if not walker.feed(_record(row)):
                        break
        return walker.report(None if head is None else (head.seq, bytes(head.hash)))

    async def chains(self) -> list[uuid.UUID]:
        """Every chain there is or should be: the platform's, then each tenant's and each head's."""
        query = sa.union(sa.select(tables.tenants.c.id), sa.select(_h.c.tenant_id))
        async with self._db.admin() as conn:
            ids = {row[0] for row in await conn.execute(query)}
        ids.discard(PLATFORM_CHAIN)
        return [PLATFORM_CHAIN, *sorted(ids, key=str)]

    async def export(self, tenant_id: uuid.UUID, since: datetime | None = None) -> AsyncIterator[dict[str, Any]]:
        """A chain's events as JSON-ready dicts in seq order; payloads included unless erased."""
        _aware(since, "since")
        query = sa.select(_e).where(_e.c.tenant_id == tenant_id).order_by(_e.c.seq)
        if since is not None:
            query = query.where(_e.c.occurred_at >= since)
        async with self._db.admin() as conn, conn.stream(query.execution_options(yield_per=1000)) as result:
            async for row in result:
                yield _record(row).as_json()

    async def erase_payload(
        self, tenant_id: uuid.UUID, seq: int, *, actor: uuid.UUID | None = None, request_id: str | None = None
    ) -> None:
        """Drop one event's payload (right to erasure); its digest stays, so the chain still verifies.

        The erasure itself is recorded on the platform chain (which event, never what it held),
        in the same transaction. Erasing an erased payload changes nothing.
        """
        erased = (
            sa.update(_e)
            .where(_e.c.tenant_id == tenant_id, _e.c.seq == seq, _e.c.erased_at.is_(None))
            .values(payload=sa.null(), erased_at=sa.func.now())
            .returning(_e.c.seq)
        )
        async with self._db.admin() as conn:
            if (await conn.execute(erased)).first() is None:
                exists = sa.select(_e.c.seq).where(_e.c.tenant_id == tenant_id, _e.c.seq == seq)
                if (await conn.execute(exists)).first() is None:
                    raise NotFound("No such audit event.")
                return
            event = AuditEvent("audit.payload_erased", payload={"tenant_id": str(tenant_id), "seq": seq})
            await self.append_platform(conn, event, request_id=request_id, actor=actor)

    async def erase_payloads(
        self,
        tenant_id: uuid.UUID,
        before: datetime,
        *,
        limit: int = 1000,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> int:
        """Erase up to ``limit`` payloads of a tenant's events older than ``before``, oldest first.

        The batched form of :meth:`erase_payload` (retention): digests stay, so the chain still
        verifies; one platform event records the batch (tenant, count, seq range), in the same
        transaction. Returns how many were erased; fewer than ``limit`` means none is left.
        """
        _aware(before, "before")
        if tenant_id == PLATFORM_CHAIN:
            raise InvalidInput("The platform chain's payloads are not erased by retention.")
        if not 1 <= limit <= 100_000:
            raise InvalidInput("limit is between 1 and 100000.")
        batch = (
            sa.select(_e.c.seq)
            .where(_e.c.tenant_id == tenant_id, _e.c.occurred_at < before, _e.c.erased_at.is_(None))
            .order_by(_e.c.seq)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        erased = (
            sa.update(_e)
            .where(_e.c.tenant_id == tenant_id, _e.c.seq.in_(batch))
            .values(payload=sa.null(), erased_at=sa.func.now())
            .returning(_e.c.seq)
        )
        async with self._db.admin() as conn:
            seqs = sorted(row.seq for row in await conn.execute(erased))
            if seqs:
                payload = {
                    "tenant_id": str(tenant_id), "count": len(seqs), "first_seq": seqs[0], "last_seq": seqs[-1],
                    "before": before.isoformat(),
                }  # fmt: skip
                event = AuditEvent("audit.payloads_erased", payload=payload)
                await self.append_platform(conn, event, request_id=request_id, actor=actor)
        return len(seqs)
