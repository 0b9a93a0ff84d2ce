"""Table definitions for queries. The DDL itself lives in the migrations, as SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, TIMESTAMP, UUID

SCHEMA = "tenantgate"

metadata = sa.MetaData(schema=SCHEMA)

_ts = TIMESTAMP(timezone=True)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("disabled_at", _ts),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("roles", ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal_id", UUID(as_uuid=True), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", BYTEA, nullable=False),
    sa.Column("roles", ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("expires_at", _ts),
    sa.Column("revoked_at", _ts),
    sa.Column("last_used_at", _ts),
    sa.Column("rotated_from", UUID(as_uuid=True)),
)

platform_keys = sa.Table(
    "platform_keys",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", BYTEA, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("revoked_at", _ts),
    sa.Column("last_used_at", _ts),
)
