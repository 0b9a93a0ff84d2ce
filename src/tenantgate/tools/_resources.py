"""What a running tool may reach besides its arguments, handed over per call by the executor.

A tool gets outside resources only through its :class:`ToolCall`, and only those its spec
declares: ``call.http()`` needs ``net.egress``, ``call.credential(...)`` needs
``credentials``, ``call.store_artifact(...)`` needs ``artifacts``.
A plugin cannot reach the network or a tenant's secrets by accident, and
a reviewer reads a tool's reach off its declaration.

The sources are interfaces; the services that implement them (``tenantgate.egress`` for
HTTP, ``tenantgate.vault`` for credentials) are wired in by the installation.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx

from tenantgate.context import TenantContext
from tenantgate.errors import CapabilityDenied, TenantgateError
from tenantgate.redact import KnownSecrets
from tenantgate.vault import Credential, secret_values

if TYPE_CHECKING:
    from tenantgate.tools._spec import ToolSpec

__all__ = [
    "ArtifactSource",
    "Credential",
    "CredentialSource",
    "HttpSource",
    "ToolCall",
    "ToolResources",
    "ToolUnavailable",
]


class ToolUnavailable(TenantgateError):
    """This process was started without a resource the tool needs (credentials or outbound HTTP)."""

    code = "tool_unavailable"


class CredentialSource(Protocol):
    """Opens a tenant's credentials by reference, auditing each use; writes refreshed secrets back sealed."""

    async def use(
        self, ctx: TenantContext, name: str, *, tool: str, call_id: uuid.UUID, run_id: uuid.UUID | None
    ) -> Credential: ...

    async def store_refreshed(
        self, ctx: TenantContext, credential_id: uuid.UUID, secret: Mapping[str, str], *, tool: str, call_id: uuid.UUID
    ) -> None: ...


class ArtifactSource(Protocol):
    """Stores content in the tenant's private artifact store; None when the tenant keeps no raw content."""

    async def store(
        self, ctx: TenantContext, data: bytes, *, kind: str, tool: str, run_id: uuid.UUID | None
    ) -> uuid.UUID | None: ...


class HttpSource(Protocol):
    """Outbound HTTP through the egress door, with the tenant's domain lists; refusals audited."""

    def client(self, ctx: TenantContext, *, tool: str, call_id: uuid.UUID) -> httpx.AsyncClient: ...


@dataclass(frozen=True, slots=True)
class ToolResources:
    """The per-process sources the executor hands to tools; absent ones make such tools fail clearly."""

    credentials: CredentialSource | None = None
    http: HttpSource | None = None
    artifacts: ArtifactSource | None = None


_NONE = ToolResources()


@dataclass(frozen=True, slots=True)
class ToolCall:
    """What a handler is given besides its arguments: who is calling, for which call, with what reach."""

    ctx: TenantContext
    call_id: uuid.UUID
    spec: ToolSpec | None = None
    run_id: uuid.UUID | None = None
    resources: ToolResources = _NONE
    # Every secret value a handler is handed is registered here for exact-match redaction,
    # whatever the vault does: a tool that echoes its credential cannot carry it out.
    secrets: KnownSecrets | None = None
    directive_id: uuid.UUID | None = None

    @property
    def idempotency_key(self) -> str:
        """The key to send to providers that accept one: the directive's id, stable across retries."""
        return str(self.directive_id or self.call_id)

    def _require(self, capability: str) -> ToolSpec:
        spec = self.spec
        if spec is None or capability not in {c.value for c in spec.capabilities}:
            name = spec.name if spec is not None else "this tool"
            raise CapabilityDenied(f"{name} does not declare the {capability!r} capability it tried to use.")
        return spec

    async def credential(self, name: str) -> Credential:
        """Open the tenant's credential ``name`` for this call (needs the ``credentials`` capability)."""
        spec = self._require("credentials")
        source = self.resources.credentials
        if source is None:
            raise ToolUnavailable(f"{spec.name} needs credentials, but this process has no credential vault.")
        credential = await source.use(self.ctx, name, tool=spec.name, call_id=self.call_id, run_id=self.run_id)
        if self.secrets is not None:
            self.secrets.add_all(secret_values(credential.secret))
        return credential

    async def store_refreshed(self, credential: Credential, secret: Mapping[str, str]) -> None:
        """Write back a refreshed secret (an OAuth token set), sealed, for later calls."""
        spec = self._require("credentials")
        source = self.resources.credentials
        if source is None:
            raise ToolUnavailable(f"{spec.name} needs credentials, but this process has no credential vault.")
        if self.secrets is not None:
            self.secrets.add_all(secret_values(secret))
        await source.store_refreshed(self.ctx, credential.id, secret, tool=spec.name, call_id=self.call_id)

    def http(self) -> httpx.AsyncClient:
        """An HTTP client whose every request goes through the egress door (needs ``net.egress``)."""
        spec = self._require("net.egress")
        source = self.resources.http
        if source is None:
            raise ToolUnavailable(f"{spec.name} needs outbound HTTP, but this process has no egress configured.")
        return source.client(self.ctx, tool=spec.name, call_id=self.call_id)

    async def store_artifact(self, data: bytes, *, kind: str) -> uuid.UUID | None:
        """Keep ``data`` as a tenant artifact (needs ``artifacts``); its id, or None where raw content is not kept."""
        spec = self._require("artifacts")
        source = self.resources.artifacts
        if source is None:
            raise ToolUnavailable(f"{spec.name} stores artifacts, but this process has no artifact store.")
        return await source.store(self.ctx, data, kind=kind, tool=spec.name, run_id=self.run_id)
