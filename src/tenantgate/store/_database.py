"""The only door to the data: tenant transactions under RLS, and admin transactions for platform ops."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tenantgate.context import TenantContext
from tenantgate.errors import ConfigurationError, DatabaseUnavailable, InvalidInput
from tenantgate.store._provision import head_revision, schema_revision, sqlalchemy_url
from tenantgate.store._roles import RoleNames
from tenantgate.store._schema import SCHEMA
from tenantgate.store._set_local import set_local
from tenantgate.store.rls import TENANT_SETTING
from tenantgate.tracing import span

__all__ = ["AuthTransaction", "Database", "driver_of"]

# The policy settings are set with SET LOCAL (store._set_local), which Citus replays on its workers.
_NO_KEY_PREFIX = set_local("tenantgate.auth_key_prefix", "")
# Connection-level faults: the database is down, restarting or unreachable. These become
# DatabaseUnavailable, which every caller treats as a refusal (fail closed).
_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    OSError,
)


# Values PostgreSQL cannot store: NUL in text (refused by psycopg before sending), ``\u0000`` in jsonb
# (22P05) and bytes that are not the database encoding (22021). They come from input, so: invalid input.
_UNSTORABLE_STATES = frozenset({"22P05", "22021"})


def _unstorable(exc: sa_exc.DataError) -> bool:
    orig = exc.orig
    if not isinstance(orig, psycopg.DataError):
        return False
    return orig.sqlstate in _UNSTORABLE_STATES or (orig.sqlstate is None and "NUL (0x00)" in str(orig))


async def driver_of(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under a SQLAlchemy one, in the same transaction."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


class AuthTransaction:
    """A transaction before any tenant is known, for the auth layer only.

    It can see exactly one API key row, the one whose public prefix it names, and then
    enter the tenant that the verified key belongs to. This is the first database work of
    every request, so each step is one pipelined round trip on the driver connection
    (measured: the same work as sequential SQLAlchemy statements cost about four times
    as much; see benchmarks/bench_foundation.py).
    """

    def __init__(self, driver: psycopg.AsyncConnection[Any]) -> None:
        self._driver = driver

    async def find_by_prefix(self, prefix: str, query: str, params: Sequence[object]) -> Any:
        """Name the key prefix, then run ``query`` (which sees only that key's row): one round trip."""
        cursor = self._driver.cursor(row_factory=namedtuple_row)
        async with self._driver.pipeline():
            await self._driver.execute(set_local("tenantgate.auth_key_prefix", prefix))
            await cursor.execute(query, params)
        return await cursor.fetchone()

    async def find_tenant(self, name: str, query: str, params: Sequence[object]) -> Any:
        """Name a tenant (console login), then run ``query`` (which sees only that tenant's row)."""
        cursor = self._driver.cursor(row_factory=namedtuple_row)
        async with self._driver.pipeline():
            await self._driver.execute(set_local("tenantgate.auth_tenant_name", name))
            await cursor.execute(query, params)
        return await cursor.fetchone()

    async def in_tenant(
        self,
        tenant_id: uuid.UUID,
        query: str,
        params: Sequence[object],
        *,
        then: tuple[str, Sequence[object]] | None = None,
    ) -> Any:
        """Forget the prefix, enter ``tenant_id``, run ``query`` (and ``then``): one round trip."""
        cursor = self._driver.cursor(row_factory=namedtuple_row)
        async with self._driver.pipeline():
            await self._driver.execute(_NO_KEY_PREFIX)
            await self._driver.execute(set_local(TENANT_SETTING, tenant_id))
            await cursor.execute(query, params)
            if then is not None:
                await self._driver.execute(*then)
        return await cursor.fetchone()


class Database:
    """Async engines for the app role (tenant traffic) and the admin role (platform operations)."""

    def __init__(self, *, app_url: str, admin_url: str, roles: RoleNames, pool_size: int = 10) -> None:
        self.roles = roles
        self._app: AsyncEngine = create_async_engine(
            sqlalchemy_url(app_url), pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
        )
        self._admin: AsyncEngine = create_async_engine(
            sqlalchemy_url(admin_url), pool_size=2, max_overflow=2, pool_recycle=1800
        )

    @asynccontextmanager
    async def tenant(self, ctx: TenantContext) -> AsyncIterator[AsyncConnection]:
        """A transaction that sees only ``ctx``'s tenant; the setting dies with the transaction."""
        with span("tenantgate.db.transaction", ctx, role="app"):
            async with self._begin(self._app) as conn:
                await (await driver_of(conn)).execute(set_local(TENANT_SETTING, ctx.tenant_id))
                yield conn

    @asynccontextmanager
    async def authenticating(self) -> AsyncIterator[AuthTransaction]:
        async with self._begin(self._app) as conn:
            yield AuthTransaction(await driver_of(conn))

    @asynccontextmanager
    async def webhook_route(self, endpoint_id: uuid.UUID) -> AsyncIterator[AsyncConnection]:
        """A transaction that sees one webhook endpoint row (its lookup policy) before the tenant is known."""
        async with self._begin(self._app) as conn:
            await (await driver_of(conn)).execute(set_local("tenantgate.webhook_endpoint", endpoint_id))
            yield conn

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[AsyncConnection]:
        """A BYPASSRLS transaction. Only for audited platform operations."""
        with span("tenantgate.db.transaction", role="admin"):
            async with self._begin(self._admin) as conn:
                yield conn

    @asynccontextmanager
    async def admin_lock(self, name: str) -> AsyncIterator[bool]:
        """Try a session advisory lock named ``name`` on its own admin connection; yields whether it was taken.

        Held while the block runs with no transaction open; released when the block ends, and by
        the server at once if this process dies (so a killed holder never blocks a rerun).
        """
        conn = self._admin.connect()
        try:
            await conn.start()
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            lock_id = (await auto.execute(sa.text("SELECT hashtextextended(:name, 0)"), {"name": name})).scalar_one()
            taken = bool((await auto.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": lock_id})).scalar())
        except _UNAVAILABLE as exc:
            await conn.close()
            raise DatabaseUnavailable(
                "The database is unavailable; the request was refused. Retry when it is back."
            ) from exc
        try:
            yield taken
        finally:
            try:
                if taken:
                    with contextlib.suppress(*_UNAVAILABLE):  # closing the session releases it anyway
                        await auto.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
            finally:
                await conn.close()

    @asynccontextmanager
    async def _begin(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        try:
            async with engine.begin() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable(
                "The database is unavailable; the request was refused. Retry when it is back."
            ) from exc
        except sa_exc.DataError as exc:
            if not _unstorable(exc):
                raise
            raise InvalidInput(
                "Text may not contain the NUL character (\\u0000) or bytes that are not UTF-8; nothing was changed."
            ) from exc

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the app role can run a query."""
        async with self._begin(self._app) as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def verify(self) -> None:
        """Refuse to run on a schema that is not migrated or an app role that could bypass RLS."""
        async with self._begin(self._app) as conn:
            revision = await conn.run_sync(schema_revision)
            head = head_revision()
            if revision != head:
                raise ConfigurationError(
                    f"The database schema is at {revision or 'nothing'}, this tenantgate needs {head}: "
                    "run `tenantgate db migrate`."
                )
            row = (
                await conn.execute(
                    sa.text(
                        "SELECT r.rolsuper, r.rolbypassrls,"
                        " (SELECT count(*) FROM pg_tables t WHERE t.schemaname = :schema"
                        "   AND t.tableowner = current_user) AS owned,"
                        " (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) AS memberships"
                        " FROM pg_roles r WHERE r.rolname = current_user"
                    ),
                    {"schema": SCHEMA},
                )
            ).one()
        if row.rolsuper or row.rolbypassrls or row.owned or row.memberships:
            raise ConfigurationError(
                "The app database role can bypass row-level security (it is a superuser, has BYPASSRLS, "
                "owns tenantgate tables or is a member of another role). Point TENANTGATE_DATABASE_URL "
                "at the app role created by `tenantgate db init`."
            )

    async def dispose(self) -> None:
        await self._app.dispose()
        await self._admin.dispose()
