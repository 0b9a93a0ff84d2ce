"""Helpers shared by the tenant-state tests (memory, schedules, skills)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tenantgate.context import PrincipalKind, Role
from tenantgate.installation import Services
from tenantgate.store import TENANT_SETTING
from tests.conftest import DatabaseFixture, TenantFixture


async def member_key(services: Services, tenant: TenantFixture) -> str:
    """An API key of a new member (not owner, not admin) of ``tenant``."""
    member = await services.principals.create(
        tenant.system, name="member", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER})
    )
    return (await services.keys.create(tenant.system, principal_id=member.id)).key


@contextmanager
def as_app(test_db: DatabaseFixture, tenant_id: uuid.UUID) -> Iterator[psycopg.Connection]:
    """A raw app-role connection inside ``tenant_id`` (one transaction, rolled back at the end)."""
    with psycopg.connect(test_db.urls.app) as conn:
        conn.execute("SELECT set_config(%s, %s, true)", [TENANT_SETTING, str(tenant_id)])
        yield conn
        conn.rollback()


async def actions(services: Services, tenant: TenantFixture, prefix: str) -> list[str]:
    """The tenant's audit actions that start with ``prefix``, in order."""
    await services.audit.drain()
    return [r.action for r in await services.audit.page(tenant.system, limit=500) if r.action.startswith(prefix)]
