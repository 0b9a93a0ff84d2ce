"""The ASGI application, its middleware stack assembled in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.routing import Route

from tenantgate import __version__
from tenantgate.api._agent_routes import router as agent_router
from tenantgate.api._alert_routes import router as alert_router
from tenantgate.api._artifact_routes import router as artifact_router
from tenantgate.api._audit_routes import router as audit_router
from tenantgate.api._confirmation_routes import router as confirmation_router
from tenantgate.api._credential_routes import router as credential_router
from tenantgate.api._deps import ServicesDep
from tenantgate.api._errors import error_responses, install_error_handlers
from tenantgate.api._headers import SecurityHeadersMiddleware
from tenantgate.api._incident_routes import router as incident_router
from tenantgate.api._mcp import McpEdge
from tenantgate.api._memory_routes import router as memory_router
from tenantgate.api._metrics import MetricsMiddleware
from tenantgate.api._metrics import router as metrics_router
from tenantgate.api._middleware import RequestContextMiddleware
from tenantgate.api._platform_routes import router as platform_router
from tenantgate.api._policy_routes import router as policy_router
from tenantgate.api._quota_routes import router as quota_router
from tenantgate.api._retention_routes import router as retention_router
from tenantgate.api._schedule_routes import router as schedule_router
from tenantgate.api._skill_routes import router as skill_router
from tenantgate.api._tenant_routes import router as tenant_router
from tenantgate.api._tool_routes import router as tool_router
from tenantgate.api._webhook_routes import router as webhook_router
from tenantgate.api.console import router as console_router
from tenantgate.installation import Services

__all__ = ["create_app"]


class Health(BaseModel):
    status: str


def create_app(services: Services, *, dispose_on_shutdown: bool = True) -> FastAPI:
    """Build the app around ready services. Start-up refuses an unmigrated or unsafe database."""

    mcp = McpEdge(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.db.verify()
        await services.start()
        async with mcp.running():  # the MCP session manager's task group lives as long as the app
            yield
        if dispose_on_shutdown:
            await services.stop()

    app = FastAPI(
        title="tenantgate",
        version=__version__,
        description="The capability boundary between what an LLM plans and what a tenant may do.",
        lifespan=lifespan,
    )
    app.state.services = services

    @app.get("/healthz", response_model=Health, tags=["ops"], responses=error_responses(503))
    async def healthz(services: ServicesDep) -> Health:
        """Unauthenticated liveness + database check. Reveals nothing about tenants."""
        await services.db.ping()
        return Health(status="ok")

    app.include_router(tenant_router)
    app.include_router(tool_router)
    app.include_router(confirmation_router)
    app.include_router(policy_router)
    app.include_router(audit_router)
    app.include_router(platform_router)
    app.include_router(credential_router)
    app.include_router(agent_router)
    app.include_router(memory_router)
    app.include_router(schedule_router)
    app.include_router(skill_router)
    app.include_router(webhook_router)
    app.include_router(quota_router)
    app.include_router(artifact_router)
    # The Model Context Protocol: JSON-RPC over streamable HTTP. Its methods are not HTTP operations, so it is
    # left out of the OpenAPI document (tests/test_mcp.py drives it with the official client instead).
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))
    app.include_router(incident_router)
    app.include_router(retention_router)
    app.include_router(alert_router)
    app.include_router(metrics_router)

    app.include_router(console_router)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)  # inside the request id: counts every answer
    # Outermost first: request id and access log wrap everything, including error responses.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    return app
