"""Benchmark database and services: a throwaway PostgreSQL, tenantgate `Services` on it, tenants with keys.

`bench_database` gives an embedded server in a temporary directory, or, with
``TENANTGATE_BENCH_DATABASE_URL`` (a superuser URL), a fresh database and roles on that server;
either way it is removed afterwards. `settings_kwargs` describes the installation as plain values
(a spawned server process can rebuild it), `running_services` opens it, `new_tenant` adds a
tenant with an owner and an API key.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tenantgate.auth import system_context
from tenantgate.config import Settings
from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Installation, Services
from tenantgate.quotas import Limits
from tenantgate.store import DatabaseUrls, EmbeddedPostgres, RoleNames, provision


@dataclass(frozen=True)
class BenchDatabase:
    """Connection URLs for the owner, app and admin roles, the role names, and where the database is."""

    urls: DatabaseUrls
    roles: RoleNames
    where: str


@contextlib.contextmanager
def bench_database() -> Iterator[BenchDatabase]:
    """The benchmark's database: external if ``TENANTGATE_BENCH_DATABASE_URL`` is set, else embedded."""
    external = os.environ.get("TENANTGATE_BENCH_DATABASE_URL")
    if external:
        with provisioned(external) as db:
            yield db
    else:
        yield embedded()


def embedded() -> BenchDatabase:
    """An embedded server in a temporary directory, stopped and removed at exit."""
    tmp = Path(tempfile.mkdtemp(prefix="tenantgate-bench-"))
    # Registered before the server registers its own stop, so it runs after it (atexit is LIFO).
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    server = EmbeddedPostgres(tmp / "data")
    return BenchDatabase(server.start(), server.roles, f"embedded PostgreSQL in {tmp}")


@contextlib.contextmanager
def provisioned(superuser_url: str) -> Iterator[BenchDatabase]:
    """A fresh database and roles on an external server, dropped afterwards."""
    name = f"tgb_{uuid.uuid4().hex[:10]}"
    roles = RoleNames.from_prefix(name)
    try:
        yield BenchDatabase(provision(superuser_url, roles=roles, database=name), roles, f"database {name}")
    finally:
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for role in (roles.owner, roles.app, roles.admin):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def describe(db: BenchDatabase) -> str:
    """``PostgreSQL <version>: <where>``, for a run's header."""
    with psycopg.connect(db.urls.app) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}: {db.where}"


def settings_kwargs(db: BenchDatabase, pepper: str | None = None) -> dict[str, Any]:
    """`Settings` for a SaaS installation on ``db``, as plain values a spawned server process can rebuild.

    The pepper is random unless given; ``kwargs["pepper"]`` holds it.
    """
    return {
        "mode": "saas",
        "database_url": db.urls.app,
        "admin_database_url": db.urls.admin,
        "owner_database_url": db.urls.owner,
        "db_role_prefix": db.roles.owner.removesuffix("_owner"),
        "pepper": pepper or secrets.token_urlsafe(48),
        # The local key provider's KEK: an external database needs it given (every process shares it).
        "master_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "jwt_issuers": (),
    }


def open_services(kwargs: dict[str, Any]) -> Services:
    """`Services` for the installation ``kwargs`` describe (the schema is already migrated)."""
    settings = Settings(_env_file=None, **kwargs)
    return Services.build(Installation.open(settings, migrate_schema=False))


@contextlib.asynccontextmanager
async def running_services(kwargs: dict[str, Any]) -> AsyncIterator[Services]:
    """`open_services`, checked against the database on entry; its connection pools disposed on exit."""
    services = open_services(kwargs)
    try:
        await services.db.verify()
        yield services
    finally:
        await services.db.dispose()


@dataclass(frozen=True)
class BenchTenant:
    """A tenant made for the benchmark, its owner principal and the owner's API key."""

    tenant_id: uuid.UUID
    owner_id: uuid.UUID
    key: str


async def new_tenant(services: Services) -> BenchTenant:
    """A new tenant with an owner principal and an API key for it."""
    tenant = await services.tenants.create(f"bench-{uuid.uuid4().hex[:10]}")
    # Benchmarks measure throughput, not refusals: this tenant's rate limits and budgets are lifted.
    await services.quotas.plans.set_tenant(tenant.id, overrides=dict.fromkeys(Limits.model_fields, 10**12))
    system = system_context(tenant.id, mode=services.settings.mode, request_id="bench")
    owner = await services.principals.create(
        system, name="owner", kind=PrincipalKind.USER, roles=frozenset({Role.OWNER})
    )
    return BenchTenant(tenant.id, owner.id, (await services.keys.create(system, principal_id=owner.id)).key)
