"""The real API tools, wired as the installation wires them, against fake providers on loopback.

``api_world(services)`` starts one fake server per provider, points the provider settings at
them (``http://<provider>.test:<port>``), builds the real registry with ``build_registry``
and an executor whose HTTP source is the real ``EgressHttp`` with the tenant's domain lists
from the policy cache and the real audit log. Only the resolver (a table of the fake hosts)
and the dialer (127.0.0.1 or a failed test) are test doubles. Credentials are the real vault's
(``services.credentials``): sealed in PostgreSQL, every use and refresh audited.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

from tenantgate.audit import AuditLog, AuditRecord
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, TenantContext
from tenantgate.egress import EgressHttp, EgressPolicy
from tenantgate.installation import Services, build_registry, tenant_domain_lists, tool_artifacts
from tenantgate.tools import Executor, ToolRegistry, ToolResources, ToolResult
from tenantgate.vault import CredentialStore
from tests.fakes import brave, google_sheets, r8r, web, whatsapp
from tests.fakes.loopback import HostTable, LoopbackOnly


@dataclass
class World:
    brave: brave.FakeBrave
    whatsapp: whatsapp.FakeWhatsApp
    sheets: google_sheets.FakeGoogleSheets
    r8r: r8r.FakeR8r
    web: web.FakeWeb
    credentials: CredentialStore
    audit: AuditLog
    resolver: HostTable
    dialled: list[str]
    settings: Settings
    registry: ToolRegistry
    executor: Executor
    http: EgressHttp

    async def run(self, ctx: TenantContext, tool: str, arguments: dict[str, Any]) -> ToolResult:
        return await self.executor.run(ctx, tool, arguments, call_id=uuid.uuid4())

    async def trail(self, ctx: TenantContext, action: str) -> list[AuditRecord]:
        """``ctx``'s tenant's audit events with ``action``, oldest first."""
        return await self.audit.page(ctx, action=action)

    def page(self, path: str) -> str:
        return f"{self.web.server.base(web.HOST)}{path}"

    def arrivals(self) -> int:
        servers = (self.brave.server, self.whatsapp.server, self.sheets.server, self.r8r.server, self.web.server)
        return sum(len(s.arrivals) for s in servers)


@asynccontextmanager
async def api_world(
    services: Services,
    *,
    mode: DeploymentMode = DeploymentMode.SAAS,
    timeout_s: float = 2.0,
    max_response_bytes: int = 1024 * 1024,
) -> AsyncIterator[World]:
    fakes = (brave.FakeBrave(), whatsapp.FakeWhatsApp(), google_sheets.FakeGoogleSheets(), r8r.FakeR8r(), web.FakeWeb())
    async with AsyncExitStack() as stack:
        for fake in fakes:
            await stack.enter_async_context(fake.server)
        fb, fw, fs, fr, fweb = fakes
        hosts = [brave.HOST, whatsapp.HOST, google_sheets.SHEETS_HOST, google_sheets.TOKEN_HOST, r8r.HOST, web.HOST]
        resolver = HostTable(dict.fromkeys(hosts, "127.0.0.1"))
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            mode=mode,
            brave_search_url=fb.server.base(brave.HOST),
            whatsapp_graph_url=fw.server.base(whatsapp.HOST),
            google_sheets_url=fs.server.base(google_sheets.SHEETS_HOST),
            google_token_url=fs.server.base(google_sheets.TOKEN_HOST) + "/token",
            r8r_url=fr.server.base(r8r.HOST),
        )
        policy = EgressPolicy(
            allowed_ports=frozenset(f.server.port for f in fakes),
            allowed_private=frozenset({ip_network("127.0.0.1/32")}),
            timeout_s=timeout_s,
            max_response_bytes=max_response_bytes,
        )
        dialled: list[str] = []
        http = EgressHttp(
            policy,
            lists=tenant_domain_lists(services.policy_cache),
            audit=services.audit,
            resolver=resolver,
            dialer=lambda: LoopbackOnly(dialled),
        )
        credentials = services.credentials
        registry = build_registry(settings)
        artifacts = tool_artifacts(services.artifacts, services.policy_cache)
        resources = ToolResources(http=http, credentials=credentials, artifacts=artifacts)
        executor = Executor(registry=registry, resources=resources)
        yield World(
            fb, fw, fs, fr, fweb, credentials, services.audit, resolver, dialled, settings, registry, executor, http
        )
