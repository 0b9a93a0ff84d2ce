"""The WhatsApp channel: a verified inbound message starts an agent turn; the reply goes out as a directive.

The tenant is the one whose endpoint serves the phone number the message came in on (the
webhook path checked that); each conversation (our number, their number) is one session.
The turn runs as the principal the tenant named on the endpoint (a service account, say).

The turn's final reply is sent by the channel, not the model, like an HTTP session's
reply: ``whatsapp_reply@v1`` (channel-only) through the boundary, as the run's AI
execution context, to the inbound message's sender, from the number it came in on. The
recipient comes from the verified signal, never from the model, so no human confirms it;
everything else applies as to any call: kill switches, the package, the tenant's grants,
quotas, audit, and a directive whose idempotency key is the inbound message id, so a
replayed signal sends nothing twice. A model that wants to write to anyone else proposes
``whatsapp_send@v1``, which is high-impact: a human confirms it.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from tenantgate.agent import AgentRuntime, RunStatus
from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.auth import PrincipalService
from tenantgate.context import TenantContext
from tenantgate.directives import DirectiveStore
from tenantgate.gate import Boundary, ProposedCall
from tenantgate.logs import get_logger
from tenantgate.signals import Signal, SignalBus
from tenantgate.store import Database
from tenantgate.tools.builtin import REPLY_TOOL
from tenantgate.webhooks import WebhookEndpoints

__all__ = ["REPLY_TOOL", "SEND_TOOL", "WhatsAppChannel"]

SEND_TOOL = "whatsapp_send@v1"  # what a model proposes to write to anyone: high-impact, a human confirms
_CONVERSATIONS = uuid.UUID("5f0c7d2e-9a53-4f57-8d0e-6a3a1c2b7e11")  # namespace of conversation session ids
_log = get_logger("tenantgate.channels")

_SESSION = sa.text(
    """
    INSERT INTO tenantgate.sessions (tenant_id, id, channel, title, created_by)
    VALUES (:tenant_id, :id, 'whatsapp', :title, :created_by)
    ON CONFLICT DO NOTHING
    RETURNING id
    """
)


class WhatsAppChannel:
    """Subscribes to ``whatsapp.message.received@v1`` and answers each message once."""

    def __init__(
        self,
        *,
        db: Database,
        runtime: AgentRuntime,
        boundary: Boundary,
        directives: DirectiveStore,
        audit: AuditLog,
        endpoints: WebhookEndpoints,
        principals: PrincipalService,
    ) -> None:
        self._db = db
        self._endpoints = endpoints
        self._principals = principals
        self._runtime = runtime
        self._boundary = boundary
        self._directives = directives
        self._audit = audit

    def attach(self, bus: SignalBus) -> None:
        bus.subscribe("whatsapp.message.received@v1", self.on_message)

    async def on_message(self, system: TenantContext, signal: Signal) -> None:
        payload = signal.payload
        key = f"whatsapp-reply:{payload['message_id']}"
        if await self._directives.find(system, key) is not None or await self._answered(system, signal):
            return  # answered already: this is a replay
        ctx = await self._speaker(system, str(payload["phone_number_id"]), signal)
        if ctx is None:
            return
        session_id = await self._session(ctx, str(payload["phone_number_id"]), str(payload["from"]))
        result = await self._runtime.run_turn(ctx, session_id, str(payload["text"]))
        if result.status is not RunStatus.COMPLETED or not result.reply:
            # A run that failed or waits for a human has nothing to tell the customer (its
            # reason is for the tenant's people, not for them).
            _log.info("whatsapp.no_reply", run_id=str(result.run_id), status=result.status.value)
            return
        reply = {
            "to": "+" + str(payload["from"]).lstrip("+"),
            "reply_to": str(payload["message_id"]),
            "phone_number_id": str(payload["phone_number_id"]),
            "message": result.reply,
        }
        outcome = await self._boundary.call(
            ctx.for_ai_execution(result.run_id), ProposedCall(tool=REPLY_TOOL, arguments=reply),
            run_id=result.run_id, idempotency_key=key, channel=True,
        )  # fmt: skip
        if outcome.confirmation is not None:
            # The tenant's grant (or compliance mode) asks a human even for replies.
            _log.info("whatsapp.reply_awaits_confirmation", run_id=str(result.run_id))
        elif outcome.result is None:
            _log.warning("whatsapp.reply_refused", run_id=str(result.run_id), code=outcome.decision.code.value)
        elif outcome.result.error is not None:
            _log.warning("whatsapp.reply_failed", run_id=str(result.run_id), outcome=outcome.result.outcome.value)

    async def _answered(self, system: TenantContext, signal: Signal) -> bool:
        """Whether a turn already ran for this message (its signal was processed once before)."""
        return signal.processed_at is not None

    async def _speaker(self, system: TenantContext, phone_number_id: str, signal: Signal) -> TenantContext | None:
        """The context of the endpoint's principal, with its current roles; none if it is gone or disabled."""
        endpoint = await self._endpoints.for_number(system, phone_number_id)
        if endpoint is None or endpoint.principal_id is None:
            _log.warning("whatsapp.no_endpoint", signal_id=str(signal.id))
            return None
        found = [p for p in await self._principals.list(system) if p.id == endpoint.principal_id]
        if not found or found[0].disabled_at is not None:
            _log.warning("whatsapp.principal_unavailable", signal_id=str(signal.id))
            return None
        principal = found[0]
        return TenantContext(
            tenant_id=system.tenant_id, principal_id=principal.id, kind=principal.kind,
            roles=frozenset(principal.roles), mode=system.mode, request_id=f"signal:{signal.id}",
        )  # fmt: skip

    async def _session(self, ctx: TenantContext, phone_number_id: str, sender: str) -> uuid.UUID:
        """The conversation's session: one per (our number, their number), created on first contact."""
        session_id = uuid.uuid5(_CONVERSATIONS, f"{ctx.tenant_id}:{phone_number_id}:{sender}")
        params = {"tenant_id": ctx.tenant_id, "id": session_id, "title": "WhatsApp", "created_by": ctx.root_principal}
        async with self._db.tenant(ctx) as conn:
            created = (await conn.execute(_SESSION, params)).first()
            if created is not None:
                await self._audit.append(
                    conn, ctx, AuditEvent(action="session.created", payload={"session_id": str(session_id),
                                                                             "channel": "whatsapp"})
                )  # fmt: skip
        return session_id
