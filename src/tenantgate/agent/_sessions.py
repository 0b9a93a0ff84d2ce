"""Sessions and their messages: tenant-scoped rows, read and written only inside the caller's tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import Role, TenantContext
from tenantgate.errors import InvalidInput, NotFound
from tenantgate.store import Database, tables

__all__ = ["HTTP_CHANNEL", "MAX_MESSAGE", "MessageInfo", "SessionInfo", "SessionStore", "may_see"]

HTTP_CHANNEL = "http"
MAX_MESSAGE = 100_000
_HISTORY = 50  # earlier messages a new turn shows the planner


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: uuid.UUID
    channel: str
    title: str | None
    created_by: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessageInfo:
    id: uuid.UUID
    session_id: uuid.UUID
    run_id: uuid.UUID | None
    role: str  # user | assistant
    kind: str  # text | outbound (sent by the message tool)
    content: str
    created_at: datetime


def may_see(ctx: TenantContext, owner: uuid.UUID) -> bool:
    """A conversation is its starter's; owners and admins of the tenant see every one (as with confirmations)."""
    return owner == ctx.root_principal or ctx.has_any_role(Role.OWNER, Role.ADMIN)


def _session(row: Any) -> SessionInfo:
    return SessionInfo(row.id, row.channel, row.title, row.created_by, row.created_at)


def _message(row: Any) -> MessageInfo:
    return MessageInfo(row.id, row.session_id, row.run_id, row.role, row.kind, row.content, row.created_at)


class SessionStore:
    def __init__(self, *, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def create(self, ctx: TenantContext, *, title: str | None = None) -> SessionInfo:
        """A new HTTP session owned by the caller's tenant; audited."""
        if title is not None and len(title) > 200:
            raise InvalidInput("A session title is at most 200 characters.")
        t = tables.sessions
        async with self._db.tenant(ctx) as conn:
            row = (
                await conn.execute(
                    t.insert()
                    .values(
                        tenant_id=ctx.tenant_id,
                        id=uuid.uuid4(),
                        channel=HTTP_CHANNEL,
                        title=title,
                        created_by=ctx.root_principal,
                    )
                    .returning(*t.c)
                )
            ).one()
            await self._audit.append(
                conn, ctx, AuditEvent(action="session.created", payload={"session_id": str(row.id)})
            )
        return _session(row)

    async def get(self, ctx: TenantContext, session_id: uuid.UUID) -> SessionInfo:
        async with self._db.tenant(ctx) as conn:
            return await self.get_in(conn, ctx, session_id)

    @staticmethod
    async def get_in(conn: AsyncConnection, ctx: TenantContext, session_id: uuid.UUID) -> SessionInfo:
        t = tables.sessions
        row = (
            await conn.execute(sa.select(t).where(t.c.tenant_id == ctx.tenant_id, t.c.id == session_id))
        ).one_or_none()
        if row is None or not may_see(ctx, row.created_by):
            raise NotFound(f"No session {session_id} in this tenant.")
        return _session(row)

    async def messages(self, ctx: TenantContext, session_id: uuid.UUID, *, limit: int = 200) -> list[MessageInfo]:
        """The session's messages, oldest first (NotFound for another tenant's session)."""
        t = tables.messages
        async with self._db.tenant(ctx) as conn:
            await self.get_in(conn, ctx, session_id)
            rows = (
                await conn.execute(
                    sa.select(t)
                    .where(t.c.tenant_id == ctx.tenant_id, t.c.session_id == session_id)
                    .order_by(t.c.seq.desc())
                    .limit(limit)
                )
            ).all()
        return [_message(r) for r in reversed(rows)]

    @staticmethod
    async def history(conn: AsyncConnection, ctx: TenantContext, session_id: uuid.UUID) -> list[MessageInfo]:
        """The last messages of the session, oldest first, for the planner."""
        t = tables.messages
        rows = (
            await conn.execute(
                sa.select(t)
                .where(t.c.tenant_id == ctx.tenant_id, t.c.session_id == session_id)
                .order_by(t.c.seq.desc())
                .limit(_HISTORY)
            )
        ).all()
        return [_message(r) for r in reversed(rows)]

    async def add(
        self,
        ctx: TenantContext,
        session_id: uuid.UUID,
        *,
        role: str,
        content: str,
        run_id: uuid.UUID | None,
        kind: str = "text",
    ) -> MessageInfo:
        async with self._db.tenant(ctx) as conn:
            return await self.add_in(conn, ctx, session_id, role=role, content=content, run_id=run_id, kind=kind)

    @staticmethod
    async def add_in(
        conn: AsyncConnection,
        ctx: TenantContext,
        session_id: uuid.UUID,
        *,
        role: str,
        content: str,
        run_id: uuid.UUID | None,
        kind: str = "text",
    ) -> MessageInfo:
        if len(content) > MAX_MESSAGE:
            raise InvalidInput(f"A message is at most {MAX_MESSAGE} characters.")
        t = tables.messages
        row = (
            await conn.execute(
                t.insert()
                .values(
                    tenant_id=ctx.tenant_id,
                    id=uuid.uuid4(),
                    session_id=session_id,
                    run_id=run_id,
                    role=role,
                    kind=kind,
                    content=content,
                )
                .returning(*t.c)
            )
        ).one()
        return _message(row)
