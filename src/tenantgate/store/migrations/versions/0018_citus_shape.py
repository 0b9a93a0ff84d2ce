"""Citus shape: two unique constraints of tenant tables name ``tenant_id`` (tests/test_citus_shape.py).

Citus refuses a PRIMARY KEY or UNIQUE constraint of a distributed table that leaves out the
distribution column. Both constraints changed here are per-tenant in fact, so the change
loses nothing:

- ``artifacts.storage_key`` is ``<tenant id>/<random>`` (``artifacts.new_storage_key``); the
  new CHECK makes that a rule, so unique per tenant is unique everywhere.
- ``console_sessions.token_hash`` is the HMAC of a 256-bit random token, and every lookup
  names the tenant (``auth._console``).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE tenantgate.artifacts
            DROP CONSTRAINT artifacts_storage_key_key,
            ADD CONSTRAINT artifacts_tenant_id_storage_key_key UNIQUE (tenant_id, storage_key),
            ADD CONSTRAINT artifacts_storage_key_tenant_check CHECK (starts_with(storage_key, tenant_id::text || '/'))
        """
    )
    op.execute(
        """
        ALTER TABLE tenantgate.console_sessions
            DROP CONSTRAINT console_sessions_token_hash_key,
            ADD CONSTRAINT console_sessions_tenant_id_token_hash_key UNIQUE (tenant_id, token_hash)
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE tenantgate.console_sessions
            DROP CONSTRAINT console_sessions_tenant_id_token_hash_key,
            ADD CONSTRAINT console_sessions_token_hash_key UNIQUE (token_hash)
        """
    )
    op.execute(
        """
        ALTER TABLE tenantgate.artifacts
            DROP CONSTRAINT artifacts_storage_key_tenant_check,
            DROP CONSTRAINT artifacts_tenant_id_storage_key_key,
            ADD CONSTRAINT artifacts_storage_key_key UNIQUE (storage_key)
        """
    )
