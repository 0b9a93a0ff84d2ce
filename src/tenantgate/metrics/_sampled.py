"""Series read from the database at scrape time, cheaply and at most every few seconds."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

import sqlalchemy as sa

from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger
from tenantgate.metrics._metrics import Metrics
from tenantgate.store import Database

__all__ = ["QueueSampler", "tenant_labels"]

_log = get_logger("tenantgate.metrics")

# Open directives across tenants: the partial index directives_open holds exactly these rows.
_OPEN = sa.text(
    "SELECT count(*) AS depth, min(created_at) AS oldest FROM tenantgate.directives"
    " WHERE status IN ('requested', 'running')"
)


class QueueSampler:
    """Directive queue depth and oldest age, read by the admin role (an aggregate, no tenant data)."""

    def __init__(self, *, db: Database, metrics: Metrics, cache_s: float = 5.0) -> None:
        self._db = db
        self._metrics = metrics
        self._cache_s = cache_s
        self._next = 0.0

    async def refresh(self) -> None:
        """Read the queue unless it was read within the cache time; a failure keeps the last values."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._cache_s
        try:
            async with self._db.admin() as conn:
                row = (await conn.execute(_OPEN)).one()
        except TenantgateError as exc:
            _log.warning("metrics.queue_unavailable", error=exc.code)
            return
        self._metrics.queue(int(row.depth), row.oldest)


async def tenant_labels(
    wanted: Iterable[str], lookup: Callable[[], Awaitable[Iterable[tuple[uuid.UUID, str]]]]
) -> dict[uuid.UUID, str]:
    """Map the configured names or ids to tenant ids; the label is the text the operator wrote."""
    wanted = [w for w in wanted if w]
    if not wanted:
        return {}
    known = list(await lookup())
    by_name = {name: tenant_id for tenant_id, name in known}
    by_id = {str(tenant_id): tenant_id for tenant_id, _ in known}
    labels: dict[uuid.UUID, str] = {}
    for item in wanted:
        tenant_id = by_id.get(item.lower()) or by_name.get(item)
        if tenant_id is None:
            _log.warning("metrics.unknown_tenant_label", tenant=item[:100])
            continue
        labels[tenant_id] = item
    return labels
