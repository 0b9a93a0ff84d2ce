"""Alembic environment: tenantgate runs migrations itself, on a connection it opened as the owner."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tenantgate.store._schema import SCHEMA

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations with `tenantgate db init` or `tenantgate db migrate`")

context.configure(
    connection=connection,
    version_table_schema=SCHEMA,
    tenantgate_roles=context.config.attributes["roles"],
)
with context.begin_transaction():
    context.run_migrations()
