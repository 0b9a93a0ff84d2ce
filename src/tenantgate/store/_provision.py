"""Create the roles, the schema and run migrations: ``tenantgate db init`` and ``db migrate``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from importlib import resources

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import URL, Connection, make_url

from tenantgate.store._roles import RoleNames
from tenantgate.store._schema import SCHEMA

__all__ = ["DatabaseUrls", "head_revision", "migrate", "provision", "schema_revision"]

# Serialises concurrent migrators (two processes starting at once) on one database.
_MIGRATION_LOCK = 0x7465_6E61_6E74  # "tenant"


@dataclass(frozen=True, slots=True)
class DatabaseUrls:
    """Connection URLs (with passwords) for the three roles."""

    owner: str
    app: str
    admin: str

    def for_role(self, role: str) -> str:
        return {"owner": self.owner, "app": self.app, "admin": self.admin}[role]


def _libpq(url: URL) -> str:
    """SQLAlchemy URL -> libpq conninfo URL (psycopg wants no '+driver')."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str) -> URL:
    """Any postgres URL -> a psycopg 3 SQLAlchemy URL."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg")


def provision(superuser_url: str, *, roles: RoleNames, database: str | None = None) -> DatabaseUrls:
    """Create or update the three roles (new passwords each time), the database and schema, then migrate.

    Re-running rotates the role passwords; to only apply new migrations use :func:`migrate`.
    """
    admin_url = sqlalchemy_url(superuser_url)
    dbname = database or admin_url.database or "postgres"
    passwords = {name: secrets.token_urlsafe(32) for name in (roles.owner, roles.app, roles.admin)}
    # NOINHERIT and no memberships: the app role cannot SET ROLE to anything stronger.
    attributes = {
        roles.owner: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT",
        roles.app: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT",
        roles.admin: "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS NOINHERIT",
    }
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        for name, attrs in attributes.items():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
            verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
            conn.execute(
                sql.SQL("{} {} WITH {} PASSWORD {}").format(
                    verb, sql.Identifier(name), sql.SQL(attrs), sql.Literal(passwords[name])
                )
            )
        has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not has_db:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(roles.owner))
            )
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}, {}").format(
                sql.Identifier(dbname), *(sql.Identifier(r) for r in (roles.owner, roles.app, roles.admin))
            )
        )

    with psycopg.connect(_libpq(admin_url.set(database=dbname)), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(SCHEMA), sql.Identifier(roles.owner)
            )
        )
        conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(SCHEMA)))
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(
                sql.Identifier(SCHEMA), sql.Identifier(roles.app), sql.Identifier(roles.admin)
            )
        )

    def role_url(name: str) -> str:
        return (
            admin_url.set(database=dbname, username=name, password=passwords[name])
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    urls = DatabaseUrls(owner=role_url(roles.owner), app=role_url(roles.app), admin=role_url(roles.admin))
    migrate(urls.owner, roles=roles)
    return urls


def _alembic_config() -> Config:
    cfg = Config()
    location = resources.files("tenantgate.store") / "migrations"
    cfg.set_main_option("script_location", str(location))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def schema_revision(conn: Connection) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
    return ctx.get_current_revision()


def migrate(owner_url: str, *, roles: RoleNames) -> str:
    """Apply pending migrations as the owner role; returns the revision now current."""
    engine = create_engine(sqlalchemy_url(owner_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            cfg.attributes["roles"] = roles
            command.upgrade(cfg, "head")
            version_table = sql.Identifier(SCHEMA, "alembic_version").as_string(None)
            conn.execute(text(f"GRANT SELECT ON {version_table} TO {_quote(roles.app)}, {_quote(roles.admin)}"))
            revision = schema_revision(conn)
    finally:
        engine.dispose()
    assert revision is not None
    return revision


def _quote(identifier: str) -> str:
    return sql.Identifier(identifier).as_string(None)
