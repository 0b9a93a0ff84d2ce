"""A stand-in for the credential vault, for tests only: an in-memory ``CredentialSource``.

``InMemoryCredentialsForTests`` keeps each tenant's credentials in a dict, records every
use and every refreshed secret written back. Swap it for the real vault when it lands.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tenantgate.context import TenantContext
from tenantgate.errors import NotFound
from tenantgate.tools import Credential


@dataclass
class InMemoryCredentialsForTests:
    """Credentials by (tenant, name). Not a vault: nothing is sealed, nothing persists."""

    stored: dict[tuple[uuid.UUID, str], Credential] = field(default_factory=dict)
    uses: list[tuple[uuid.UUID, str, str]] = field(default_factory=list)  # (tenant, name, tool)
    refreshed: list[tuple[uuid.UUID, str, dict[str, str]]] = field(default_factory=list)

    def put(
        self,
        tenant_id: uuid.UUID,
        name: str,
        secret: Mapping[str, str],
        *,
        kind: str = "api_key",
        provider: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Credential:
        credential = Credential(uuid.uuid4(), name, kind, provider, dict(secret), dict(metadata or {}))
        self.stored[(tenant_id, name)] = credential
        return credential

    async def use(
        self, ctx: TenantContext, name: str, *, tool: str, call_id: uuid.UUID, run_id: uuid.UUID | None
    ) -> Credential:
        found = self.stored.get((ctx.tenant_id, name))
        if found is None:
            raise NotFound(f"This tenant has no credential named {name!r}.")
        self.uses.append((ctx.tenant_id, name, tool))
        return found

    async def store_refreshed(
        self, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str], *, tool: str, call_id: uuid.UUID
    ) -> None:
        for key, credential in self.stored.items():
            if key[0] == ctx.tenant_id and credential.id == credential_id:
                self.stored[key] = replace(credential, secret=dict(secret))
                self.refreshed.append((ctx.tenant_id, credential.name, dict(secret)))
                return
        raise NotFound("No such credential in this tenant.")
