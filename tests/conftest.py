"""Shared fixtures: one real PostgreSQL per test session.

By default an embedded server in a temporary directory. With
``TENANTGATE_TEST_DATABASE_URL`` (a superuser URL), a fresh database and a fresh set of
roles on that server, dropped afterwards. Tests isolate themselves by creating their
own tenants, never by truncating.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy.engine import make_url

from tenantgate.api import create_app
from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.store import DatabaseUrls, EmbeddedPostgres, RoleNames, provision
from tenantgate.tenants import Tenant
from tests import fixture_tools

PEPPER = "test-pepper-" + "p" * 40
# The local key provider's KEK for the suite (an external database needs it given, not generated).
MASTER_KEY = "dGVuYW50Z2F0ZS10ZXN0LW1hc3Rlci1rZXktMzJieXQ="

# Nothing the suite runs writes to the user's data directory: a Settings without a data_dir, and every
# CLI subprocess (they inherit the environment), lands in a throwaway XDG data home instead.
_DATA_HOME = Path(tempfile.mkdtemp(prefix="tenantgate-test-home-"))
os.environ["XDG_DATA_HOME"] = str(_DATA_HOME)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_DATA_HOME, ignore_errors=True)


@dataclass(frozen=True)
class DatabaseFixture:
    urls: DatabaseUrls
    roles: RoleNames
    superuser: str  # a superuser URL of the same database


@pytest.fixture(scope="session")
def test_db() -> Iterator[DatabaseFixture]:
    external = os.environ.get("TENANTGATE_TEST_DATABASE_URL")
    if not external:
        # Not under pytest's tmp_path: pytest prunes old base dirs, which may belong to a
        # concurrent session whose server is still running.
        root = Path(tempfile.mkdtemp(prefix="tenantgate-test-"))
        embedded = EmbeddedPostgres(root / "data")
        try:
            urls = embedded.start()
            superuser = embedded.superuser_url().replace("/postgres?", "/tenantgate?")
            yield DatabaseFixture(urls, embedded.roles, superuser)
        finally:
            embedded.stop()
            shutil.rmtree(root, ignore_errors=True)
        return
    suffix = uuid.uuid4().hex[:10]
    roles = RoleNames.from_prefix(f"tgt_{suffix}")
    dbname = f"tgt_{suffix}"
    urls = provision(external, roles=roles, database=dbname)
    superuser = make_url(external).set(database=dbname).render_as_string(hide_password=False)
    yield DatabaseFixture(urls, roles, superuser)
    with psycopg.connect(external, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        for role in (roles.owner, roles.app, roles.admin):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def artifacts_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="tenantgate-artifacts-"))
    yield root / "artifacts"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(test_db: DatabaseFixture, artifacts_root: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        mode=DeploymentMode.SAAS,
        database_url=test_db.urls.app,
        admin_database_url=test_db.urls.admin,
        owner_database_url=test_db.urls.owner,
        db_role_prefix=test_db.roles.owner.removesuffix("_owner"),
        pepper=PEPPER,
        master_key=MASTER_KEY,
        jwt_issuers=(),
        artifacts_root=artifacts_root,
    )


@pytest.fixture(scope="session")
def installation(settings: Settings) -> Installation:
    return Installation.open(settings)


@pytest.fixture(scope="session")
async def services(installation: Installation) -> AsyncIterator[Services]:
    services = Services.build(installation, registry=fixture_tools.registry(installation.settings.mode))
    await services.db.verify()
    await services.start()
    yield services
    await services.stop()


@pytest.fixture(scope="session")
async def app(services: Services) -> AsyncIterator[FastAPI]:
    app = create_app(services, dispose_on_shutdown=False)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async def settle(response: httpx.Response) -> None:
        # Access events (authentications) are written without holding the request; tests
        # that read the trail right after a request wait for them here.
        await services.audit.drain()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tenantgate.test", event_hooks={"response": [settle]}
    ) as c:
        yield c


@dataclass(frozen=True)
class TenantFixture:
    tenant: Tenant
    system: TenantContext  # the platform's context inside this tenant
    owner_id: uuid.UUID
    owner_key: str

    @property
    def id(self) -> uuid.UUID:
        return self.tenant.id

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.owner_key}"}


async def new_tenant(services: Services, name: str = "t") -> TenantFixture:
    tenant = await services.tenants.create(f"{name}-{uuid.uuid4().hex[:10]}")
    system = system_context(tenant.id, mode=services.settings.mode, request_id="test")
    owner = await services.principals.create(
        system, name="owner", kind=PrincipalKind.USER, roles=frozenset({Role.OWNER})
    )
    issued = await services.keys.create(system, principal_id=owner.id)
    return TenantFixture(tenant, system, owner.id, issued.key)


@pytest.fixture
async def tenant_a(services: Services) -> TenantFixture:
    return await new_tenant(services, "a")


@pytest.fixture
async def tenant_b(services: Services) -> TenantFixture:
    return await new_tenant(services, "b")


@pytest.fixture(scope="session", autouse=True)
def _quiet_logs() -> None:
    configure_logging("warning")
