"""Soft delete and version history for heartbeat tasks and credentials.

Heartbeat tasks get a version number and ``heartbeat_task_versions``; credentials get
``deleted_at`` (a delete keeps the sealed secret, so a restore brings the credential back
usable), a version number and ``credential_versions``, which hold metadata only (name,
kind, provider, metadata, field names): never a sealed secret or any secret value. A
credential's name is unique among its live rows only, like the other kinds. Existing rows
get a first version row, so every item has a history to restore from.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_HISTORY = ["SELECT", "INSERT"]


def upgrade() -> None:
    # --- heartbeat tasks ------------------------------------------------------------------
    op.execute(
        "ALTER TABLE tenantgate.heartbeat_tasks ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version > 0)"
    )
    op.execute(
        """
        CREATE TABLE tenantgate.heartbeat_task_versions (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            task_id uuid NOT NULL,
            version integer NOT NULL CHECK (version > 0),
            definition jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
            change text NOT NULL CHECK (change IN ('created', 'updated', 'paused', 'resumed', 'removed', 'restored')),
            changed_at timestamptz NOT NULL DEFAULT now(),
            changed_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, task_id, version),
            FOREIGN KEY (tenant_id, task_id) REFERENCES tenantgate.heartbeat_tasks (tenant_id, id)
        )
        """
    )
    make_tenant_owned("heartbeat_task_versions", app_privileges=_HISTORY)
    # Existing tasks: version 1 as created; a task removed before this migration also gets its
    # removal as version 2, so a restore finds the version before it.
    op.execute(
        """
        INSERT INTO tenantgate.heartbeat_task_versions
            (tenant_id, task_id, version, definition, change, changed_at, changed_by)
        SELECT tenant_id, id, 1,
               jsonb_build_object('name', name, 'prompt', prompt, 'every_seconds', every_seconds, 'enabled', enabled),
               'created', created_at, created_by
        FROM tenantgate.heartbeat_tasks
        """
    )
    op.execute("UPDATE tenantgate.heartbeat_tasks SET version = 2 WHERE deleted_at IS NOT NULL")
    op.execute(
        """
        INSERT INTO tenantgate.heartbeat_task_versions
            (tenant_id, task_id, version, definition, change, changed_at, changed_by)
        SELECT tenant_id, id, 2,
               jsonb_build_object('name', name, 'prompt', prompt, 'every_seconds', every_seconds, 'enabled', enabled),
               'removed', deleted_at, created_by
        FROM tenantgate.heartbeat_tasks
        WHERE deleted_at IS NOT NULL
        """
    )

    # --- credentials ----------------------------------------------------------------------
    op.execute("ALTER TABLE tenantgate.credentials ADD COLUMN deleted_at timestamptz")
    op.execute("ALTER TABLE tenantgate.credentials ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version > 0)")
    op.execute("ALTER TABLE tenantgate.credentials DROP CONSTRAINT credentials_tenant_id_name_key")
    op.execute(
        "CREATE UNIQUE INDEX credentials_name ON tenantgate.credentials (tenant_id, name) WHERE deleted_at IS NULL"
    )
    op.execute(
        """
        CREATE TABLE tenantgate.credential_versions (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            credential_id uuid NOT NULL,
            version integer NOT NULL CHECK (version > 0),
            name text NOT NULL,
            kind text NOT NULL,
            provider text,
            metadata jsonb NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
            fields text[] NOT NULL,
            change text NOT NULL
                CHECK (change IN ('created', 'updated', 'secret_replaced', 'deleted', 'restored')),
            changed_at timestamptz NOT NULL DEFAULT now(),
            changed_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, credential_id, version),
            FOREIGN KEY (tenant_id, credential_id) REFERENCES tenantgate.credentials (tenant_id, id)
        )
        """
    )
    make_tenant_owned("credential_versions", app_privileges=_HISTORY)
    op.execute(
        """
        INSERT INTO tenantgate.credential_versions
            (tenant_id, credential_id, version, name, kind, provider, metadata, fields, change, changed_by)
        SELECT tenant_id, id, 1, name, kind, provider, metadata,
               ARRAY(SELECT k FROM jsonb_object_keys(sealed) AS k ORDER BY 1), 'created', created_by
        FROM tenantgate.credentials
        """
    )


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
