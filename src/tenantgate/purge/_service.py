"""Purge by tenant: request (disable at once), then execute after a grace period, resumably.

Execution runs on the admin (BYPASSRLS) connection, the path every platform operation takes.
Chosen over the tenant's own RLS context because the app role deliberately lacks DELETE on
several tenant tables (audit evidence, directives, signals) and a table added later cannot be
assumed to grant it; a purge that silently skipped rows it may not delete would be worse than
one that runs with the platform's rights. The guard is the statement itself: every DELETE and
UPDATE names ``tenant_id`` as a bound parameter, and the tests dump every row of another
tenant before and after and compare them byte for byte.

Each step is idempotent and recorded on the purge record (``steps``); counts are added to the
record's report in the same transaction as the batch they count, so a purge killed at any
moment continues on the next run (``tenantgate tenants purge ID --execute``, or the worker)
and ends with exact numbers. One process executes a purge at a time (a session advisory lock
that dies with its process).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.artifacts import ArtifactStore
from tenantgate.audit import PLATFORM_CHAIN, AuditEvent, AuditLog
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode
from tenantgate.errors import InvalidInput, NotFound, TenantgateError
from tenantgate.logs import get_logger
from tenantgate.purge._catalog import QUEUE_JOBS, delete_batch, delete_queue_jobs, in_queue_schema, tenant_tables
from tenantgate.purge._record import (
    STEPS,
    PurgeConfirmationRequired,
    PurgeConflict,
    PurgeNotDue,
    PurgeNotFound,
    PurgeRecord,
    PurgeState,
)
from tenantgate.store import Database, tables
from tenantgate.vault import Vault

__all__ = ["PurgeService"]

_p, _t, _e = tables.tenant_purges, tables.tenants, tables.audit_events
_log = get_logger("tenantgate.purge")
_OPEN = (PurgeState.REQUESTED.value, PurgeState.EXECUTING.value)

_CANCEL_RUNS = sa.text(
    "UPDATE tenantgate.runs SET cancel_requested = true"
    " WHERE tenant_id = :tenant AND status = 'running' AND NOT cancel_requested"
)
_CANCEL_DIRECTIVES = sa.text(
    "UPDATE tenantgate.directives SET status = 'canceled', finished_at = now(), updated_at = now(),"
    " last_error = 'the tenant is being purged' WHERE tenant_id = :tenant AND status = 'requested'"
)
_DROP_QUEUED = sa.text(
    "DELETE FROM procrastinate.procrastinate_jobs WHERE args->>'tenant_id' = :tenant AND status = 'todo'"
)
# Counts only grow, in the transaction of the work they count: a rerun adds what it does.
_ADD = sa.text(
    "UPDATE tenantgate.tenant_purges SET report = jsonb_set(report, CAST(:path AS text[]),"
    " to_jsonb(coalesce((report #>> CAST(:path AS text[]))::bigint, 0) + :n))"
    " WHERE tenant_id = :tenant AND id = :id"
)
_STEP_DONE = sa.text(
    "UPDATE tenantgate.tenant_purges SET steps = array_append(steps, :step)"
    " WHERE tenant_id = :tenant AND id = :id AND NOT (:step = ANY(steps))"
)
_ERASE_TENANT_AUDIT = sa.text(
    "UPDATE tenantgate.audit_events SET payload = NULL, erased_at = now()"
    " WHERE tenant_id = :tenant AND seq IN (SELECT seq FROM tenantgate.audit_events"
    "  WHERE tenant_id = :tenant AND erased_at IS NULL ORDER BY seq LIMIT :limit)"
)
# The platform chain's events about the tenant (its creation names it); not the purge's own.
_ERASE_PLATFORM_AUDIT = sa.text(
    "UPDATE tenantgate.audit_events SET payload = NULL, erased_at = now()"
    " WHERE tenant_id = :platform AND erased_at IS NULL AND payload->>'tenant_id' = :tenant"
    " AND action NOT LIKE 'tenant.purge%'"
)


def _check_actor(text: str, what: str) -> str:
    if not 1 <= len(text) <= 200:
        raise InvalidInput(f"{what} is 1 to 200 characters.")
    return text


class PurgeService:
    """Request, cancel, execute and report tenant purges. Platform operations only."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        vault: Vault,
        artifacts: ArtifactStore,
        mode: DeploymentMode,
        grace: timedelta = timedelta(days=7),
        batch_rows: int = 5000,
    ) -> None:
        self._db = db
        self._audit = audit
        self._vault = vault
        self._artifacts = artifacts
        self._mode = mode
        self._grace = grace
        self._batch = batch_rows

    # --- request and cancel ------------------------------------------------------------------

    async def request(
        self,
        tenant_id: uuid.UUID,
        *,
        reason: str,
        requested_by: str,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> PurgeRecord:
        """Record the purge (who, why, when) and disable the tenant at once. Audited on both chains."""
        reason = reason.strip()
        if not 1 <= len(reason) <= 1000:
            raise InvalidInput("A purge needs a reason of 1 to 1000 characters.")
        _check_actor(requested_by, "requested_by")
        async with self._db.admin() as conn:
            tenant = (
                await conn.execute(sa.select(_t.c.status).where(_t.c.id == tenant_id).with_for_update())
            ).one_or_none()
            if tenant is None:
                raise NotFound("No such tenant.")
            if tenant.status not in ("active", "suspended"):
                raise PurgeConflict(
                    f"This tenant is already {tenant.status}: see `tenantgate tenants purge {tenant_id} --show`."
                )
            stopped = await self._stop_work(conn, tenant_id)  # counted on the record from the start
            row = (
                await conn.execute(
                    sa.insert(_p)
                    .values(
                        tenant_id=tenant_id,
                        id=uuid.uuid4(),
                        state="requested",
                        reason=reason,
                        requested_by=requested_by,
                        execute_after=sa.func.now() + self._grace,
                        previous_status=tenant.status,
                        steps=[],
                        report=stopped,
                    )
                    .returning(*_p.c)
                )
            ).one()
            await conn.execute(sa.update(_t).where(_t.c.id == tenant_id).values(status="purging"))
            payload = {"tenant_id": str(tenant_id), "purge_id": str(row.id),
                       "execute_after": row.execute_after.isoformat(), **stopped}  # fmt: skip
            await self._audit.append_platform(
                conn, AuditEvent("tenant.purge_requested", payload=payload), request_id=request_id, actor=actor
            )
            await self._audit.append(conn, self._system(tenant_id, request_id), AuditEvent(
                "tenant.purge_requested", decision="succeeded", payload=payload))  # fmt: skip
        _log.info("tenant.purge_requested", tenant_id=str(tenant_id), purge_id=str(row.id))
        return PurgeRecord.of(row)

    async def cancel(
        self,
        tenant_id: uuid.UUID,
        *,
        cancelled_by: str,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> PurgeRecord:
        """Withdraw a requested purge before it executes; the tenant gets its previous status back. Audited."""
        _check_actor(cancelled_by, "cancelled_by")
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.update(_p)
                    .where(_p.c.tenant_id == tenant_id, _p.c.state == PurgeState.REQUESTED.value)
                    .values(state="cancelled", cancelled_by=cancelled_by, cancelled_at=sa.func.now())
                    .returning(*_p.c)
                )
            ).one_or_none()
            if row is None:
                current = await self._latest(conn, tenant_id)
                if current is not None and current.state in (PurgeState.EXECUTING, PurgeState.COMPLETED):
                    raise PurgeConflict("This purge has started executing; it cannot be cancelled, only finished.")
                raise PurgeNotFound("No purge of this tenant is waiting to execute.")
            await conn.execute(sa.update(_t).where(_t.c.id == tenant_id).values(status=row.previous_status))
            payload = {"tenant_id": str(tenant_id), "purge_id": str(row.id)}
            await self._audit.append_platform(
                conn, AuditEvent("tenant.purge_cancelled", payload=payload), request_id=request_id, actor=actor
            )
            await self._audit.append(conn, self._system(tenant_id, request_id), AuditEvent(
                "tenant.purge_cancelled", decision="succeeded", payload=payload))  # fmt: skip
        _log.info("tenant.purge_cancelled", tenant_id=str(tenant_id), purge_id=str(row.id))
        return PurgeRecord.of(row)

    async def get(self, tenant_id: uuid.UUID) -> PurgeRecord:
        """The tenant's latest purge (requested, cancelled, executing or completed)."""
        async with self._db.admin() as conn:
            record = await self._latest(conn, tenant_id)
        if record is None:
            raise PurgeNotFound("No purge of this tenant was ever requested.")
        return record

    # --- execute -----------------------------------------------------------------------------

    async def execute(
        self,
        tenant_id: uuid.UUID,
        *,
        executed_by: str,
        now: bool = False,
        confirm: str | None = None,
        actor: uuid.UUID | None = None,
        request_id: str | None = None,
    ) -> PurgeRecord:
        """Execute the tenant's purge: after its grace period, or ``now`` with ``confirm`` = the tenant's name.

        A purge that is already executing (interrupted) continues where it stopped, without
        confirmation: that decision was made when it started.
        """
        _check_actor(executed_by, "executed_by")
        async with self._db.admin() as conn:
            record = await self._latest(conn, tenant_id)
            name = (await conn.execute(sa.select(_t.c.name).where(_t.c.id == tenant_id))).scalar_one_or_none()
            clock = (await conn.execute(sa.select(sa.func.now()))).scalar_one()
        if record is None or record.state is PurgeState.CANCELLED:
            raise PurgeNotFound("No purge of this tenant is requested: request one with a reason first.")
        if record.state is PurgeState.COMPLETED:
            raise PurgeConflict("This tenant's purge has completed; its report is on the purge record.")
        if record.state is PurgeState.REQUESTED:
            if now:
                if confirm is None or confirm != name:
                    raise PurgeConfirmationRequired(
                        "Executing a purge now is irreversible: confirm with the tenant's name "
                        '(API: {"now": true, "confirm": "<tenant name>"}; CLI: --now --confirm).'
                    )
            elif record.execute_after > clock:
                raise PurgeNotDue(
                    f"The grace period runs until {record.execute_after.isoformat()}: the worker executes the purge "
                    "then, or execute it now with confirmation (--now --confirm).",
                    execute_after=record.execute_after.isoformat(),
                )
        async with self._db.admin_lock(f"tenantgate.purge:{record.id}") as taken:
            if not taken:
                raise PurgeConflict("Another process is executing this purge right now; it will finish it.")
            record = await self._start(record, executed_by)
            for step in STEPS:
                if step not in record.steps:
                    started = time.perf_counter()
                    await getattr(self, f"_step_{step}")(record, actor, request_id)
                    if step != "report":  # the report step closed the record
                        async with self._db.admin() as conn:
                            elapsed = round((time.perf_counter() - started) * 1000)
                            await self._add(conn, record, ["step_ms", step], elapsed)
                    _log.info("tenant.purge_step", tenant_id=str(tenant_id), purge_id=str(record.id), step=step)
        return await self.get(tenant_id)

    async def run_due(self, *, executed_by: str = "worker") -> list[PurgeRecord]:
        """Execute every purge whose grace period has passed, and resume every interrupted one (the worker)."""
        due = sa.select(_p.c.tenant_id).where(
            sa.or_(
                sa.and_(_p.c.state == PurgeState.REQUESTED.value, _p.c.execute_after <= sa.func.now()),
                _p.c.state == PurgeState.EXECUTING.value,
            )
        )
        async with self._db.admin() as conn:
            tenant_ids: Sequence[uuid.UUID] = (
                (await conn.execute(due.order_by(_p.c.execute_after).limit(20))).scalars().all()
            )
        done: list[PurgeRecord] = []
        for tenant_id in tenant_ids:
            try:
                done.append(await self.execute(tenant_id, executed_by=executed_by))
            except (PurgeConflict, PurgeNotDue, PurgeNotFound) as exc:  # another worker has it, or it changed
                _log.info("tenant.purge_skipped", tenant_id=str(tenant_id), code=exc.code)
            except TenantgateError as exc:  # a fault (database, key provider): this one resumes on the next tick
                _log.warning("tenant.purge_interrupted", tenant_id=str(tenant_id), code=exc.code)
        return done

    # --- the steps ---------------------------------------------------------------------------

    async def _step_disable(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """Again, in case anything started between the request and now: the tenant refuses, its work stops."""
        async with self._db.admin() as conn:
            await conn.execute(
                sa.update(_t).where(_t.c.id == record.tenant_id, _t.c.status != "purged").values(status="purging")
            )
            for key, count in (await self._stop_work(conn, record.tenant_id)).items():
                await self._add(conn, record, [key], count)
            await self._done(conn, record, "disable")

    async def _step_keys(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """Crypto-shredding first: from here on nothing of the tenant's sealed data opens, backups included."""
        async with self._db.admin() as conn:
            shredded = await self._vault.shred_tenant(conn, record.tenant_id)
            await self._add(conn, record, ["data_keys_destroyed"], shredded.data_keys)
            if shredded.tenant_kek or "tenant_kek_destroyed" not in record.report:
                await self._set(conn, record, "tenant_kek_destroyed", shredded.tenant_kek)
            await self._done(conn, record, "keys")

    async def _step_rows(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """Every tenant-owned table from the catalog, children first, in batches; then the queue's job rows."""
        async with self._db.admin() as conn:
            found = await tenant_tables(conn)
        for table in (t for t in found if not t.kept):
            while True:
                async with self._db.admin() as conn:
                    deleted = await delete_batch(conn, table.name, record.tenant_id, self._batch)
                    await self._add(conn, record, ["rows", table.name], deleted)
                if deleted < self._batch:
                    break
        while True:
            async with self._db.admin() as conn:
                deleted = await delete_queue_jobs(conn, record.tenant_id, self._batch)
                await self._add(conn, record, ["rows", QUEUE_JOBS], deleted)
            if deleted < self._batch:
                break
        async with self._db.admin() as conn:
            await self._done(conn, record, "rows")

    async def _step_storage(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """Every object under the tenant's storage prefix, listed by storage (orphans without rows go too)."""
        removed = await self._artifacts.purge_storage(record.tenant_id)
        async with self._db.admin() as conn:
            await self._add(conn, record, ["objects_deleted"], removed)
            await self._done(conn, record, "storage")

    async def _step_audit(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """Payloads erased (chain and digests kept), the tenant's chain and the platform's events about it."""
        while True:
            async with self._db.admin() as conn:
                erased = int(
                    (
                        await conn.execute(_ERASE_TENANT_AUDIT, {"tenant": record.tenant_id, "limit": self._batch})
                    ).rowcount
                )
                await self._add(conn, record, ["audit_events_erased"], erased)
            if erased < self._batch:
                break
        async with self._db.admin() as conn:
            params = {"platform": PLATFORM_CHAIN, "tenant": str(record.tenant_id)}
            erased = int((await conn.execute(_ERASE_PLATFORM_AUDIT, params)).rowcount)
            await self._add(conn, record, ["platform_events_erased"], erased)
            await self._done(conn, record, "audit")

    async def _step_tombstone(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """The tenants row stays (foreign keys point at it) with its name and display name erased."""
        async with self._db.admin() as conn:
            await conn.execute(
                sa.update(_t)
                .where(_t.c.id == record.tenant_id)
                .values(name=f"purged-{record.tenant_id}", display_name="purged", status="purged")
            )
            await self._done(conn, record, "tombstone")

    async def _step_report(self, record: PurgeRecord, actor: uuid.UUID | None, request_id: str | None) -> None:
        """Close the record and end the tenant's chain with a verifiable ``tenant.purged`` event (no personal data)."""
        async with self._db.admin() as conn:
            current = await self._latest(conn, record.tenant_id)
            assert current is not None
            finished = (await conn.execute(sa.select(sa.func.now()))).scalar_one()
            payload = self._summary(current, finished)
            await conn.execute(
                sa.update(_p)
                .where(_p.c.tenant_id == record.tenant_id, _p.c.id == record.id)
                .values(state="completed", finished_at=finished)
            )
            await self._audit.append(conn, self._system(record.tenant_id, request_id), AuditEvent(
                "tenant.purged", decision="succeeded", payload=payload))  # fmt: skip
            await self._audit.append_platform(
                conn, AuditEvent("tenant.purge_executed", decision="succeeded", payload=payload),
                request_id=request_id, actor=actor,
            )  # fmt: skip
            await self._done(conn, record, "report")
        _log.info("tenant.purged", tenant_id=str(record.tenant_id), purge_id=str(record.id))

    # --- helpers -----------------------------------------------------------------------------

    def _system(self, tenant_id: uuid.UUID, request_id: str | None) -> Any:
        return system_context(tenant_id, mode=self._mode, request_id=request_id or "purge")

    @staticmethod
    def _summary(record: PurgeRecord, finished: datetime) -> dict[str, Any]:
        report = record.report
        rows = {name: int(n) for name, n in report.get("rows", {}).items()}
        return {
            "tenant_id": str(record.tenant_id),
            "purge_id": str(record.id),
            "rows_deleted": sum(rows.values()),
            "tables": len(rows),
            "objects_deleted": int(report.get("objects_deleted", 0)),
            "data_keys_destroyed": int(report.get("data_keys_destroyed", 0)),
            "tenant_kek_destroyed": bool(report.get("tenant_kek_destroyed", False)),
            "audit_events_erased": int(report.get("audit_events_erased", 0)),
            "started_at": (record.started_at or finished).astimezone(UTC).isoformat(),
            "finished_at": finished.astimezone(UTC).isoformat(),
        }

    async def _stop_work(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> dict[str, int]:
        """Running runs are asked to stop, requested directives cancelled, queued jobs dropped."""
        params = {"tenant": tenant_id}
        runs = int((await conn.execute(_CANCEL_RUNS, params)).rowcount)
        directives = int((await conn.execute(_CANCEL_DIRECTIVES, params)).rowcount)
        jobs = await in_queue_schema(conn, _DROP_QUEUED, {"tenant": str(tenant_id)})
        return {"runs_cancelled": runs, "directives_cancelled": directives, "queued_jobs_dropped": jobs}

    async def _start(self, record: PurgeRecord, executed_by: str) -> PurgeRecord:
        async with self._db.admin() as conn:
            row = (
                await conn.execute(
                    sa.update(_p)
                    .where(_p.c.tenant_id == record.tenant_id, _p.c.id == record.id, _p.c.state.in_(_OPEN))
                    .values(
                        state="executing",
                        started_at=sa.func.coalesce(_p.c.started_at, sa.func.now()),
                        executed_by=sa.func.coalesce(_p.c.executed_by, executed_by),
                        report=sa.case(
                            (_p.c.report.has_key("rows"), _p.c.report),
                            else_=_p.c.report.op("||")(sa.cast({"rows": {}, "step_ms": {}}, _p.c.report.type)),
                        ),
                    )
                    .returning(*_p.c)
                )
            ).one_or_none()
        if row is None:
            raise PurgeConflict("The purge changed while it was being started (cancelled or finished elsewhere).")
        return PurgeRecord.of(row)

    async def _latest(self, conn: AsyncConnection, tenant_id: uuid.UUID) -> PurgeRecord | None:
        row = (
            await conn.execute(
                sa.select(_p).where(_p.c.tenant_id == tenant_id).order_by(_p.c.requested_at.desc(), _p.c.id).limit(1)
            )
        ).one_or_none()
        return None if row is None else PurgeRecord.of(row)

    async def _add(self, conn: AsyncConnection, record: PurgeRecord, path: list[str], n: int) -> None:
        await conn.execute(_ADD, {"path": path, "n": n, "tenant": record.tenant_id, "id": record.id})

    async def _set(self, conn: AsyncConnection, record: PurgeRecord, key: str, value: Any) -> None:
        await conn.execute(
            sa.update(_p)
            .where(_p.c.tenant_id == record.tenant_id, _p.c.id == record.id)
            .values(report=_p.c.report.op("||")(sa.cast({key: value}, _p.c.report.type)))
        )

    async def _done(self, conn: AsyncConnection, record: PurgeRecord, step: str) -> None:
        await conn.execute(_STEP_DONE, {"step": step, "tenant": record.tenant_id, "id": record.id})
