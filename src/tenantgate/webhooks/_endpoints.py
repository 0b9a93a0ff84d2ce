"""Webhook endpoints: a public id that routes a delivery to its tenant and its sealed secret.

The secret lives in the vault (a ``webhook_secret`` credential); the endpoint row names it.
The edge reads exactly the one endpoint its URL names before it knows the tenant (the
``webhook_endpoint_lookup`` policy); everything after runs in the tenant's transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from tenantgate.audit import AuditEvent, AuditLog
from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput
from tenantgate.store import Database
from tenantgate.vault import CredentialStore, require_credential_manager

__all__ = ["Endpoint", "Provider", "WebhookEndpoints"]

Provider = Literal["standard", "stripe", "whatsapp"]
PROVIDERS: frozenset[str] = frozenset({"standard", "stripe", "whatsapp"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    tenant_id: uuid.UUID
    id: uuid.UUID
    provider: str
    credential_name: str
    verify_token_digest: str | None
    phone_number_id: str | None
    principal_id: uuid.UUID | None  # WhatsApp: the principal whose grants the channel's turns run under
    tolerance_s: int

    def verify_token_matches(self, token: str) -> bool:
        """Constant-time check of a WhatsApp ``hub.verify_token`` against the stored digest."""
        if self.verify_token_digest is None:
            return False
        return hmac.compare_digest(_digest(token), self.verify_token_digest)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _endpoint(row: sa.Row[object]) -> Endpoint:
    m = row._mapping
    return Endpoint(
        tenant_id=m["tenant_id"], id=m["id"], provider=m["provider"], credential_name=m["credential_name"],
        verify_token_digest=m["verify_token_digest"], phone_number_id=m["phone_number_id"],
        principal_id=m["principal_id"], tolerance_s=m["tolerance_s"],
    )  # fmt: skip


_INSERT = sa.text(
    """
    INSERT INTO tenantgate.webhook_endpoints
        (tenant_id, id, provider, credential_name, verify_token_digest, phone_number_id, principal_id, tolerance_s,
         created_by)
    VALUES (:tenant_id, :id, :provider, :credential_name, :verify_token_digest, :phone_number_id, :principal_id,
            :tolerance_s, :created_by)
    RETURNING *
    """
)
_BY_NUMBER = sa.text(
    "SELECT * FROM tenantgate.webhook_endpoints WHERE tenant_id = :tenant_id AND provider = 'whatsapp'"
    " AND phone_number_id = :phone AND disabled_at IS NULL"
)
_PRINCIPAL = sa.text(
    "SELECT kind FROM tenantgate.principals WHERE tenant_id = :tenant_id AND id = :id AND disabled_at IS NULL"
)
_ROUTE = sa.text("SELECT * FROM tenantgate.webhook_endpoints WHERE id = :id AND disabled_at IS NULL")


class WebhookEndpoints:
    """Creates endpoints (secret sealed in the vault) and routes deliveries to them."""

    def __init__(self, *, db: Database, credentials: CredentialStore, audit: AuditLog) -> None:
        self._db = db
        self._credentials = credentials
        self._audit = audit

    async def create(
        self,
        ctx: TenantContext,
        *,
        provider: str,
        secret: str,
        verify_token: str | None = None,
        phone_number_id: str | None = None,
        principal_id: uuid.UUID | None = None,
        tolerance_s: int = 300,
    ) -> Endpoint:
        """A new endpoint; its secret becomes the credential ``webhook-<endpoint id>``. Owner/admin."""
        require_credential_manager(ctx)
        if provider not in PROVIDERS:
            raise InvalidInput(f"A webhook provider is one of {', '.join(sorted(PROVIDERS))}, not {provider!r}.")
        if provider == "whatsapp" and not (verify_token and phone_number_id and principal_id):
            raise InvalidInput(
                "A WhatsApp endpoint needs a verify token, the phone number id it serves, and the principal"
                " (a service account) whose grants its conversations run under."
            )
        if not 1 <= tolerance_s <= 3600:
            raise InvalidInput("The timestamp tolerance is 1 to 3600 seconds.")
        if principal_id is not None:
            async with self._db.tenant(ctx) as conn:
                kind = await conn.scalar(_PRINCIPAL, {"tenant_id": ctx.tenant_id, "id": principal_id})
            if kind not in {"user", "service_account"}:
                raise InvalidInput(
                    "The endpoint's principal must be an enabled user or service account of this tenant."
                )
        endpoint_id = uuid.uuid4()
        name = f"webhook-{endpoint_id}"
        await self._credentials.create(ctx, name=name, kind="webhook_secret", secret={"secret": secret}, provider=None)
        params = {
            "tenant_id": ctx.tenant_id, "id": endpoint_id, "provider": provider, "credential_name": name,
            "verify_token_digest": _digest(verify_token) if verify_token else None,
            "phone_number_id": phone_number_id, "principal_id": principal_id, "tolerance_s": tolerance_s,
            "created_by": ctx.principal_id,
        }  # fmt: skip
        async with self._db.tenant(ctx) as conn:
            endpoint = _endpoint((await conn.execute(_INSERT, params)).one())
            await self._audit.append(
                conn,
                ctx,
                AuditEvent(
                    action="webhook.endpoint_created",
                    payload={"endpoint_id": str(endpoint_id), "provider": provider, "credential": name},
                ),
            )
        return endpoint

    async def for_number(self, ctx: TenantContext, phone_number_id: str) -> Endpoint | None:
        """The tenant's enabled WhatsApp endpoint for a phone number id."""
        async with self._db.tenant(ctx) as conn:
            row = (await conn.execute(_BY_NUMBER, {"tenant_id": ctx.tenant_id, "phone": phone_number_id})).first()
        return _endpoint(row) if row is not None else None

    async def route(self, endpoint_id: uuid.UUID) -> Endpoint | None:
        """The endpoint a delivery's URL names, if it exists and is enabled."""
        async with self._db.webhook_route(endpoint_id) as conn:
            row = (await conn.execute(_ROUTE, {"id": endpoint_id})).first()
        return _endpoint(row) if row is not None else None

    async def secret(self, ctx: TenantContext, endpoint: Endpoint) -> str:
        """Open the endpoint's signing secret (each use audited by the vault)."""
        credential = await self._credentials.use(
            ctx, endpoint.credential_name, tool="webhooks", call_id=endpoint.id, run_id=None
        )
        return credential.secret["secret"]
