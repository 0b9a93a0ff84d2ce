"""Held runs: what a run waiting for a human's confirmation needs to continue once approved.

When a tool call needs a confirmation, the run ends ``awaiting_confirmation`` and its hold is
written in the same transaction: the conversation so far, the results of the calls before the
held one, the held call and the calls after it, the steps and tokens used, the wall-clock time
spent, and who started it. Resuming claims the run with a conditional update
(``awaiting_confirmation -> running``) and deletes the hold in one transaction, so a run is
resumed at most once however many approvals or processes race for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.agent._planner import (
    AssistantTurn,
    Conversation,
    PlannedCall,
    ToolResultItem,
    ToolResults,
    Turn,
    Usage,
    UserTurn,
)
from tenantgate.agent._runs import RunStatus
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.store import Database, tables

__all__ = ["Claim", "Hold", "HoldStore", "lookup_context"]

_h, _r, _c = tables.run_holds, tables.runs, tables.confirmations


@dataclass(frozen=True, slots=True)
class Hold:
    """A paused run's continuation: the conversation, the plan's calls from the held one on."""

    conversation: Conversation
    done: tuple[ToolResultItem, ...]  # results of the plan's calls before the held one
    pending: tuple[PlannedCall, ...]  # the held call first, then the rest of the plan
    steps: int
    usage: Usage
    elapsed_s: float  # wall clock already spent: the resumed run gets only what is left

    def to_json(self) -> dict[str, Any]:
        return {
            "system": self.conversation.system,
            "turns": [_turn_json(t) for t in self.conversation.turns],
            "done": [_result_json(r) for r in self.done],
            "pending": [_call_json(c) for c in self.pending],
            "steps": self.steps,
            "usage": [self.usage.input_tokens, self.usage.output_tokens],
            "elapsed_s": self.elapsed_s,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Hold:
        return cls(
            conversation=Conversation(data["system"], [_turn(t) for t in data["turns"]]),
            done=tuple(_result(r) for r in data["done"]),
            pending=tuple(_call(c) for c in data["pending"]),
            steps=int(data["steps"]),
            usage=Usage(int(data["usage"][0]), int(data["usage"][1])),
            elapsed_s=float(data["elapsed_s"]),
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """A run claimed for resumption: who started it, the decided confirmation and the hold."""

    starter: TenantContext
    confirmation_id: uuid.UUID
    confirmation_status: str  # approved, denied, used, or expired
    decided_by: uuid.UUID | None
    hold: Hold


def _call_json(c: PlannedCall) -> dict[str, Any]:
    return {"id": c.id, "tool": c.tool, "arguments": c.arguments, "error": c.error, "wire": c.wire}


def _call(d: dict[str, Any]) -> PlannedCall:
    return PlannedCall(d["id"], d["tool"], d["arguments"], d["error"], d["wire"])


def _result_json(r: ToolResultItem) -> dict[str, Any]:
    return {"call_id": r.call_id, "content": r.content, "is_error": r.is_error}


def _result(d: dict[str, Any]) -> ToolResultItem:
    return ToolResultItem(d["call_id"], d["content"], bool(d["is_error"]))


def _turn_json(t: Turn) -> dict[str, Any]:
    if isinstance(t, UserTurn):
        return {"user": t.text}
    if isinstance(t, AssistantTurn):
        return {"assistant": t.text, "calls": [_call_json(c) for c in t.calls]}
    return {"results": [_result_json(r) for r in t.results]}


def _turn(d: dict[str, Any]) -> Turn:
    if "user" in d:
        return UserTurn(d["user"])
    if "assistant" in d:
        return AssistantTurn(d["assistant"], tuple(_call(c) for c in d["calls"]))
    return ToolResults(tuple(_result(r) for r in d["results"]))


class HoldStore:
    """Holds of runs awaiting a confirmation, under the tenant's row-level security."""

    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def save(
        self,
        conn: AsyncConnection,
        starter: TenantContext,
        run_id: uuid.UUID,
        *,
        confirmation_id: uuid.UUID,
        expires_at: datetime,
        hold: Hold,
    ) -> None:
        """Write the hold in the caller's transaction (the one that records ``awaiting_confirmation``)."""
        await conn.execute(
            _h.insert().values(
                tenant_id=starter.tenant_id,
                run_id=run_id,
                confirmation_id=confirmation_id,
                principal_id=starter.principal_id,
                principal_kind=starter.kind.value,
                roles=sorted(r.value for r in starter.roles),
                state=hold.to_json(),
                created_at=sa.func.now(),
                expires_at=expires_at,
            )
        )

    async def run_for(self, ctx: TenantContext, confirmation_id: uuid.UUID) -> uuid.UUID | None:
        """The run held on this confirmation, if any (in the caller's tenant)."""
        async with self._db.tenant(ctx) as conn:
            return (
                await conn.execute(
                    sa.select(_h.c.run_id).where(
                        _h.c.tenant_id == ctx.tenant_id, _h.c.confirmation_id == confirmation_id
                    )
                )
            ).scalar_one_or_none()

    async def expired(self, *, limit: int = 100) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(tenant, run) of holds whose confirmation has expired, across tenants (ids only)."""
        async with self._db.admin() as conn:
            rows = await conn.execute(
                sa.select(_h.c.tenant_id, _h.c.run_id)
                .where(_h.c.expires_at <= sa.func.now())
                .order_by(_h.c.expires_at)
                .limit(limit)
            )
            return [(row.tenant_id, row.run_id) for row in rows]

    async def claim(self, lookup: TenantContext, run_id: uuid.UUID, *, now: datetime) -> Claim | None:
        """Take the run out of ``awaiting_confirmation`` once its confirmation is decided or expired.

        None when there is nothing to do: no hold (resumed already, or never held), the run is no
        longer waiting, or its confirmation is still pending and not expired. Audited
        (``run.resumed``) in the claiming transaction.
        """
        tenant_id = lookup.tenant_id
        async with self._db.tenant(lookup) as conn:
            hold = (
                await conn.execute(sa.select(_h).where(_h.c.tenant_id == tenant_id, _h.c.run_id == run_id))
            ).one_or_none()
            if hold is None:
                return None
            confirmation = (
                await conn.execute(
                    sa.select(_c.c.status, _c.c.expires_at, _c.c.decided_by).where(
                        _c.c.tenant_id == tenant_id, _c.c.id == hold.confirmation_id
                    )
                )
            ).one_or_none()
            status = "expired" if confirmation is None else confirmation.status
            if confirmation is not None and status in ("pending", "approved") and confirmation.expires_at <= now:
                status = "expired"
            if status == "pending":
                return None  # nobody has decided yet
            claimed = (
                await conn.execute(
                    _r.update()
                    .where(
                        _r.c.tenant_id == tenant_id,
                        _r.c.id == run_id,
                        _r.c.status == RunStatus.AWAITING_CONFIRMATION.value,
                    )
                    .values(status=RunStatus.RUNNING.value, finished_at=None)
                    .returning(_r.c.id)
                )
            ).one_or_none()
            await conn.execute(_h.delete().where(_h.c.tenant_id == tenant_id, _h.c.run_id == run_id))
            if claimed is None:
                return None
            starter = TenantContext(
                tenant_id=tenant_id,
                principal_id=hold.principal_id,
                kind=PrincipalKind(hold.principal_kind),
                roles=frozenset(Role(r) for r in hold.roles),
                mode=lookup.mode,
                request_id=f"run:{run_id}",
            )
            decided_by = confirmation.decided_by if confirmation is not None else None
            await self._audit.append(
                conn,
                starter,
                AuditEvent(
                    action="run.resumed",
                    decision="allow" if status in ("approved", "used") else "deny",
                    code=status,
                    payload={"run_id": str(run_id), "confirmation_id": str(hold.confirmation_id),
                             **({"decided_by": str(decided_by)} if decided_by else {})},
                ),
            )  # fmt: skip
        return Claim(starter, hold.confirmation_id, status, decided_by, Hold.from_json(hold.state))


def lookup_context(tenant_id: uuid.UUID, mode: DeploymentMode, run_id: uuid.UUID) -> TenantContext:
    """A platform context to find a held run by id (the run then continues as its starter)."""
    return system_context(tenant_id, mode=mode, request_id=f"resume:{run_id}")
