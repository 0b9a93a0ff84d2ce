"""Artifacts: tenant-owned stored content (raw web pages, uploads), referenced by id.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The bytes live in storage under ``storage_key`` (opaque, prefixed by the tenant id); the
    # row is the only way to reach them, so row security decides who can.
    op.execute(
        """
        CREATE TABLE tenantgate.artifacts (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
            content_type text NOT NULL CHECK (length(content_type) BETWEEN 1 AND 100),
            size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
            sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
            storage_key text NOT NULL CHECK (length(storage_key) BETWEEN 1 AND 300),
            created_by uuid NOT NULL,
            created_by_kind text NOT NULL,
            run_id uuid,
            retention_class text NOT NULL DEFAULT 'standard'
                CHECK (retention_class IN ('short', 'standard', 'long')),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (storage_key)
        )
        """
    )
    op.execute("CREATE INDEX artifacts_recent ON tenantgate.artifacts (tenant_id, created_at DESC)")
    make_tenant_owned("artifacts", app_privileges=["SELECT", "INSERT", "DELETE"])


def downgrade() -> None:
    op.execute("DROP TABLE tenantgate.artifacts")
