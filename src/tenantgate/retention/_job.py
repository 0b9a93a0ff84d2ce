"""The retention job: for each tenant and class, remove what aged out, in batches, audited.

- run events and messages: rows deleted;
- artifacts: objects then rows, through the artifact service (the tenant's own RLS context);
- audit payloads: erased through :meth:`AuditLog.erase_payloads` (digests stay, chains verify);
- soft-deleted rows: every tenant table with ``deleted_at`` (from the catalog), with their
  version rows (:data:`VERSION_CHILDREN`) first.

Rows other than artifacts are deleted by the admin role with the tenant named in every
statement: the app role holds no DELETE on these tables on purpose (history and messages are
append-only for tenant traffic), and granting it for retention would let any app-role bug
destroy what soft delete promises to keep. One run at a time per database: a PostgreSQL
advisory lock, held for the run; a second runner finds it taken and skips.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tenantgate.artifacts import ArtifactStore
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode
from tenantgate.errors import InvalidInput, TenantgateError
from tenantgate.logs import get_logger
from tenantgate.retention._classes import VERSION_CHILDREN, DataClass
from tenantgate.retention._settings import RetentionSettings, TenantRetention
from tenantgate.retention._sweep import Aged, catalog_tables, count_children, delete_children, soft_deleted_tables
from tenantgate.store import Database

__all__ = ["ClassReport", "Progress", "RetentionJob", "RetentionReport", "TenantReport"]

_log = get_logger("tenantgate.retention")

_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(hashtext('tenantgate.retention'))")
# Classes removed by plain batched deletes, and how their age is read.
_AGED = {
    DataClass.RUN_EVENTS: Aged("run_events", "occurred_at"),
    DataClass.MESSAGES: Aged("messages", "created_at"),
}
_ARTIFACTS = Aged("artifacts", "created_at")
_AUDIT = Aged("audit_events", "occurred_at", "erased_at IS NULL")

_SELECTORS = {**_AGED, DataClass.ARTIFACTS: _ARTIFACTS, DataClass.AUDIT_PAYLOADS: _AUDIT}

Progress = Callable[[uuid.UUID, DataClass, int], None]  # tenant, class, rows so far: after each batch


@dataclass(frozen=True, slots=True)
class ClassReport:
    """One class of one tenant: rows that went (or would go), the oldest, the cutoff, batches."""

    data_class: DataClass
    count: int = 0
    oldest: datetime | None = None
    cutoff: datetime | None = None  # None: kept forever, nothing looked at
    batches: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TenantReport:
    tenant_id: uuid.UUID
    classes: tuple[ClassReport, ...]

    @property
    def total(self) -> int:
        return sum(c.count for c in self.classes)

    def counts(self) -> dict[str, int]:
        return {c.data_class.value: c.count for c in self.classes}


@dataclass(frozen=True, slots=True)
class RetentionReport:
    dry_run: bool
    skipped: bool = False  # another runner held the lock
    tenants: tuple[TenantReport, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return any(c.error for t in self.tenants for c in t.classes)


def _failed(exc: TenantgateError | sa.exc.DBAPIError, tenant: uuid.UUID, data_class: DataClass) -> str:
    code = exc.code if isinstance(exc, TenantgateError) else type(exc.orig).__name__
    _log.error("retention.class_failed", tenant_id=str(tenant), data_class=data_class.value, error=code)
    return code


class RetentionJob:
    """Applies every tenant's retention (``periods``) to its data."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        periods: RetentionSettings,
        artifacts: ArtifactStore,
        mode: DeploymentMode,
        batch_size: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if batch_size < 1:
            raise InvalidInput("The retention batch size is at least 1.")
        self._db, self._audit, self._artifacts, self._mode = db, audit, artifacts, mode
        self.periods = periods
        self.batch_size = batch_size
        self._clock = clock

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        """Hold the retention lock for the block; yields False if another runner holds it."""
        async with self._db.admin() as conn:
            yield bool((await conn.execute(_LOCK)).scalar_one())

    async def run(
        self, *, tenant_id: uuid.UUID | None = None, dry_run: bool = False, progress: Progress | None = None
    ) -> RetentionReport:
        """Apply retention to every tenant (or one); ``dry_run`` only counts what would go."""
        tenants = await self.periods.all_tenants()
        if tenant_id is not None:
            tenants = [t for t in tenants if t.tenant_id == tenant_id]
            if not tenants:
                raise InvalidInput(f"No tenant with id {tenant_id}.")
        if dry_run:
            return RetentionReport(True, tenants=tuple([await self._tenant(t, True, progress) for t in tenants]))
        async with self.exclusive() as acquired:
            if not acquired:
                _log.info("retention.skipped", reason="another runner holds the lock")
                return RetentionReport(False, skipped=True)
            reports = tuple([await self._tenant(t, False, progress) for t in tenants])
        totals = {c.value: sum(r.counts()[c.value] for r in reports) for c in DataClass}
        await self._audit.record_platform(
            AuditEvent("retention.run", payload={"tenants": len(reports), "counts": totals})
        )
        _log.info("retention.done", tenants=len(reports), **totals)
        return RetentionReport(False, tenants=reports)

    async def _tenant(self, retention: TenantRetention, dry_run: bool, progress: Progress | None) -> TenantReport:
        now = self._clock()
        tenant = retention.tenant_id
        reports: list[ClassReport] = []
        for data_class in DataClass:
            days = retention.days(data_class)
            if days is None:
                reports.append(ClassReport(data_class))
                continue
            cutoff = now - timedelta(days=days)
            if dry_run:
                try:
                    count, oldest = await self._preview(data_class, tenant, cutoff)
                    reports.append(ClassReport(data_class, count, oldest, cutoff))
                except (TenantgateError, sa.exc.DBAPIError) as exc:
                    reports.append(ClassReport(data_class, 0, None, cutoff, 0, _failed(exc, tenant, data_class)))
            else:
                reports.append(await self._apply(data_class, tenant, cutoff, progress))
        report = TenantReport(tenant, tuple(reports))
        if not dry_run and report.total:
            payload: dict[str, Any] = {
                "counts": report.counts(),
                "cutoffs": {c.data_class.value: c.cutoff.isoformat() for c in reports if c.cutoff is not None},
            }
            await self._audit.record_as(tenant, AuditEvent("retention.applied", payload=payload))
        _log.info("retention.tenant", tenant_id=str(tenant), dry_run=dry_run, **report.counts())
        return report

    # --- per class ---------------------------------------------------------------------------

    async def _apply(
        self, data_class: DataClass, tenant: uuid.UUID, cutoff: datetime, progress: Progress | None
    ) -> ClassReport:
        total = batches = 0
        while True:
            try:
                done = await self._batch(data_class, tenant, cutoff)
            except (TenantgateError, sa.exc.DBAPIError) as exc:
                # The failed batch rolled back: what earlier batches removed is still counted
                # (and audited); what is left stays until the next run, the safe side.
                return ClassReport(data_class, total, None, cutoff, batches, _failed(exc, tenant, data_class))
            if done == 0:
                return ClassReport(data_class, total, None, cutoff, batches)
            total, batches = total + done, batches + 1
            _log.info("retention.batch", tenant_id=str(tenant), data_class=data_class.value, rows=done, total=total)
            if progress is not None:
                progress(tenant, data_class, total)

    async def _batch(self, data_class: DataClass, tenant: uuid.UUID, cutoff: datetime) -> int:
        """One batch, one transaction; how many rows went (0: nothing left)."""
        limit = self.batch_size
        if data_class is DataClass.ARTIFACTS:
            ctx = system_context(tenant, mode=self._mode, request_id="retention")
            return await self._artifacts.expire(ctx, before=cutoff, limit=limit)
        if data_class is DataClass.AUDIT_PAYLOADS:
            return await self._audit.erase_payloads(tenant, cutoff, limit=limit, request_id="retention")
        if data_class is DataClass.SOFT_DELETED:
            return await self._soft_deleted_batch(tenant, cutoff)
        async with self._db.admin() as conn:
            return await _AGED[data_class].delete_batch(conn, tenant, cutoff, limit)

    async def _soft_deleted_batch(self, tenant: uuid.UUID, cutoff: datetime) -> int:
        # One batch per table per transaction: the first table with aged rows gives this batch.
        async with self._db.admin() as conn:
            present = await catalog_tables(conn)
            for table in await soft_deleted_tables(conn):
                children = [c for c in VERSION_CHILDREN.get(table, ()) if c[0] in present]
                aged = Aged(table, "deleted_at")
                if not children:
                    if removed := await aged.delete_batch(conn, tenant, cutoff, self.batch_size):
                        return removed
                    continue
                ids = await aged.lock_ids(conn, tenant, cutoff, self.batch_size)
                if not ids:
                    continue
                removed = 0
                for child, column in children:  # they reference the parents: they go first
                    removed += await delete_children(conn, child, column, tenant, ids)
                return removed + await aged.delete_ids(conn, tenant, ids)
        return 0

    async def _preview(self, data_class: DataClass, tenant: uuid.UUID, cutoff: datetime) -> tuple[int, datetime | None]:
        async with self._db.admin() as conn:
            await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            if data_class is DataClass.SOFT_DELETED:
                present = await catalog_tables(conn)
                count, oldest = 0, None
                for table in await soft_deleted_tables(conn):
                    aged = Aged(table, "deleted_at")
                    n, first = await aged.preview(conn, tenant, cutoff)
                    if not n:
                        continue
                    count += n
                    oldest = first if oldest is None or (first is not None and first < oldest) else oldest
                    for child, column in VERSION_CHILDREN.get(table, ()):
                        if child in present:
                            count += await count_children(conn, child, column, aged, tenant, cutoff)
                return count, oldest
            return await _SELECTORS[data_class].preview(conn, tenant, cutoff)
