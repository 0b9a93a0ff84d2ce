"""The directives table: record once per idempotency key, claim with a lease, finish with a fence.

A directive is a tool call with an effect (write, external, destructive) that is recorded
before it happens. Its ``idempotency_key`` is unique per tenant, so a second request with
the same key (a double click, a planner retry) finds the first directive instead of
creating a second effect. Execution claims the row with a lease; a worker killed mid-call
loses its claim when the lease runs out, and the next attempt runs with the same directive
id, which handlers pass to providers as their idempotency key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.store import Database

__all__ = ["Directive", "DirectiveNotFound", "DirectiveStatus", "DirectiveStore", "IdempotencyConflict"]

_MAX_ERROR = 2000


class DirectiveStatus(StrEnum):
    REQUESTED = "requested"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in {DirectiveStatus.SUCCEEDED, DirectiveStatus.FAILED, DirectiveStatus.CANCELED}


class IdempotencyConflict(InvalidInput):
    """The idempotency key was used already for a different call; nothing was recorded."""

    code = "idempotency_conflict"


class DirectiveNotFound(NotFound):
    """No such directive in this tenant."""

    code = "directive_not_found"


@dataclass(frozen=True, slots=True)
class Directive:
    """One recorded side effect and where it stands."""

    tenant_id: uuid.UUID
    id: uuid.UUID
    tool: str
    arguments: Mapping[str, Any]
    args_digest: str
    idempotency_key: str
    principal_id: uuid.UUID
    principal_kind: PrincipalKind
    roles: frozenset[Role]
    acting_for: uuid.UUID | None
    acting_for_kind: PrincipalKind | None
    run_id: uuid.UUID | None
    call_id: uuid.UUID
    status: DirectiveStatus
    attempts: int
    max_attempts: int
    lease_until: datetime | None
    last_error: str | None
    result: Any
    created_at: datetime
    finished_at: datetime | None

    def requester(self, mode: DeploymentMode) -> TenantContext:
        """The context the directive was requested under: the effect runs as that principal."""
        return TenantContext(
            tenant_id=self.tenant_id,
            principal_id=self.principal_id,
            kind=self.principal_kind,
            roles=self.roles,
            mode=mode,
            request_id=f"directive:{self.id}",
            acting_for=self.acting_for,
            acting_for_kind=self.acting_for_kind,
        )

    def summary(self) -> dict[str, Any]:
        """What a caller sees: id, status, attempts, and the result or error once known."""
        return {
            "directive_id": str(self.id),
            "status": self.status.value,
            "tool": self.tool,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.last_error,
        }


def _directive(row: sa.Row[Any]) -> Directive:
    m = row._mapping
    return Directive(
        tenant_id=m["tenant_id"], id=m["id"], tool=m["tool"], arguments=m["arguments"], args_digest=m["args_digest"],
        idempotency_key=m["idempotency_key"], principal_id=m["principal_id"],
        principal_kind=PrincipalKind(m["principal_kind"]), roles=frozenset(Role(r) for r in m["roles"]),
        acting_for=m["acting_for"],
        acting_for_kind=PrincipalKind(m["acting_for_kind"]) if m["acting_for_kind"] else None,
        run_id=m["run_id"], call_id=m["call_id"], status=DirectiveStatus(m["status"]), attempts=m["attempts"],
        max_attempts=m["max_attempts"], lease_until=m["lease_until"], last_error=m["last_error"], result=m["result"],
        created_at=m["created_at"], finished_at=m["finished_at"],
    )  # fmt: skip


_INSERT = sa.text(
    """
    INSERT INTO tenantgate.directives
        (tenant_id, id, tool, arguments, args_digest, idempotency_key, principal_id, principal_kind, roles,
         acting_for, acting_for_kind, run_id, call_id, max_attempts)
    VALUES (:tenant_id, :id, :tool, CAST(:arguments AS jsonb), :args_digest, :key, :principal_id, :principal_kind,
            :roles, :acting_for, :acting_for_kind, :run_id, :call_id, :max_attempts)
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING *
    """
)
_BY_KEY = sa.text("SELECT * FROM tenantgate.directives WHERE tenant_id = :tenant_id AND idempotency_key = :key")
_BY_ID = sa.text("SELECT * FROM tenantgate.directives WHERE tenant_id = :tenant_id AND id = :id")
# A claim takes a requested directive, or a running one whose holder's lease ran out (it
# crashed): attempts counts every start, so a directive that keeps killing its worker stops.
_CLAIM = sa.text(
    """
    UPDATE tenantgate.directives
       SET status = 'running', attempts = attempts + 1, updated_at = now(),
           lease_until = now() + make_interval(secs => :lease_s)
     WHERE tenant_id = :tenant_id AND id = :id AND attempts < max_attempts
       AND (status = 'requested' OR (status = 'running' AND lease_until < now()))
    RETURNING *
    """
)
_EXHAUSTED = sa.text(
    """
    UPDATE tenantgate.directives
       SET status = 'failed', updated_at = now(), finished_at = now(), lease_until = NULL,
           last_error = coalesce(last_error, 'the directive ran out of attempts')
     WHERE tenant_id = :tenant_id AND id = :id AND attempts >= max_attempts
       AND (status = 'requested' OR (status = 'running' AND lease_until < now()))
    RETURNING *
    """
)
# Fenced by the attempt number: a worker whose lease ran out cannot overwrite the outcome of
# the attempt that took over from it.
_FINISH = sa.text(
    """
    UPDATE tenantgate.directives
       SET status = :status, result = CAST(:result AS jsonb), last_error = :error, updated_at = now(),
           lease_until = NULL, finished_at = CASE WHEN :final THEN now() ELSE NULL END
     WHERE tenant_id = :tenant_id AND id = :id AND status = 'running' AND attempts = :attempt
    RETURNING *
    """
)
_CANCEL = sa.text(
    """
    UPDATE tenantgate.directives SET status = 'canceled', updated_at = now(), finished_at = now()
     WHERE tenant_id = :tenant_id AND id = :id AND status = 'requested'
    RETURNING *
    """
)


class DirectiveStore:
    """Tenant-scoped directive rows; every change of status is audited in its transaction."""

    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def record(
        self,
        ctx: TenantContext,
        *,
        tool: str,
        arguments: Mapping[str, Any],
        args_digest: str,
        idempotency_key: str,
        call_id: uuid.UUID,
        run_id: uuid.UUID | None,
        max_attempts: int,
    ) -> tuple[Directive, bool]:
        """The directive for ``idempotency_key``: a new one (``True``) or the one recorded before."""
        if not 1 <= len(idempotency_key) <= 200 or not idempotency_key.isprintable():
            raise InvalidInput("An idempotency key is 1 to 200 printable characters.")
        params = {
            "tenant_id": ctx.tenant_id, "id": uuid.uuid4(), "tool": tool, "arguments": json.dumps(dict(arguments)),
            "args_digest": args_digest, "key": idempotency_key, "principal_id": ctx.principal_id,
            "principal_kind": ctx.kind.value, "roles": sorted(r.value for r in ctx.roles),
            "acting_for": ctx.acting_for,
            "acting_for_kind": ctx.acting_for_kind.value if ctx.acting_for_kind else None,
            "run_id": run_id, "call_id": call_id, "max_attempts": max_attempts,
        }  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_INSERT, params)).first()
            if row is not None:
                directive = _directive(row)
                await self._audited(conn, ctx, directive, "directive.requested")
                return directive, True
            found = (await conn.execute(_BY_KEY, {"tenant_id": ctx.tenant_id, "key": idempotency_key})).one()
        existing = _directive(found)
        if existing.tool != tool or existing.args_digest != args_digest:
            raise IdempotencyConflict(
                "This idempotency key was used for a different call; use a new key for a new action."
            )
        return existing, False

    async def find(self, ctx: TenantContext, idempotency_key: str) -> Directive | None:
        """The directive recorded under ``idempotency_key``, if any."""
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_BY_KEY, {"tenant_id": ctx.tenant_id, "key": idempotency_key})).first()
        return _directive(row) if row is not None else None

    async def get(self, ctx: TenantContext, directive_id: uuid.UUID) -> Directive:
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_BY_ID, {"tenant_id": ctx.tenant_id, "id": directive_id})).first()
        if row is None:
            raise DirectiveNotFound(f"No directive {directive_id} in this tenant.")
        return _directive(row)

    async def claim(self, ctx: TenantContext, directive_id: uuid.UUID, *, lease_s: float) -> Directive | None:
        """Start an attempt; ``None`` if the directive is finished or another holder's lease is live."""
        params = {"tenant_id": ctx.tenant_id, "id": directive_id, "lease_s": lease_s}
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_CLAIM, params)).first()
            if row is not None:
                directive = _directive(row)
                await self._audited(conn, ctx, directive, "directive.started")
                return directive
            exhausted = (await conn.execute(_EXHAUSTED, {"tenant_id": ctx.tenant_id, "id": directive_id})).first()
            if exhausted is not None:
                await self._audited(conn, ctx, _directive(exhausted), "directive.failed")
        return None

    async def finish(
        self,
        ctx: TenantContext,
        directive: Directive,
        *,
        succeeded: bool,
        result: Any = None,
        error: str | None = None,
    ) -> Directive | None:
        """Record the attempt's outcome. A failure with attempts left goes back to ``requested``."""
        if succeeded:
            status = DirectiveStatus.SUCCEEDED
        elif directive.attempts >= directive.max_attempts:
            status = DirectiveStatus.FAILED
        else:
            status = DirectiveStatus.REQUESTED
        params = {
            "tenant_id": ctx.tenant_id, "id": directive.id, "attempt": directive.attempts, "status": status.value,
            "result": json.dumps(result) if succeeded else None, "error": error[:_MAX_ERROR] if error else None,
            "final": status.final,
        }  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_FINISH, params)).first()
            if row is None:
                return None  # fenced off: a later attempt owns the directive now
            finished = _directive(row)
            action = {"succeeded": "directive.succeeded", "failed": "directive.failed"}.get(status.value)
            await self._audited(conn, ctx, finished, action or "directive.retrying")
        return finished

    async def cancel(self, ctx: TenantContext, directive_id: uuid.UUID) -> Directive:
        """Cancel a directive that has not started; a started or finished one is left as it is."""
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_CANCEL, {"tenant_id": ctx.tenant_id, "id": directive_id})).first()
            if row is not None:
                directive = _directive(row)
                await self._audited(conn, ctx, directive, "directive.canceled")
                return directive
        return await self.get(ctx, directive_id)

    async def _audited(self, conn: AsyncConnection, ctx: TenantContext, directive: Directive, action: str) -> None:
        payload: dict[str, Any] = {
            "directive_id": str(directive.id), "call_id": str(directive.call_id), "status": directive.status.value,
            "attempts": directive.attempts, "args_digest": directive.args_digest,
        }  # fmt: skip
        if directive.run_id is not None:
            payload["run_id"] = str(directive.run_id)
        if directive.last_error and directive.status != DirectiveStatus.SUCCEEDED:
            payload["error"] = directive.last_error[:500]
        decision = "failed" if directive.status == DirectiveStatus.FAILED else None
        await self._audit.append(
            conn, ctx, AuditEvent(action=action, decision=decision, tool=directive.tool, payload=payload)
        )
