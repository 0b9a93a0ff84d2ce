"""The credential vault: per-tenant wrapped data keys and sealed credentials.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A tenant's data keys, stored only wrapped by a KEK of the key provider. One is active
    # (new seals use it); retired ones still open what they sealed until it is re-encrypted;
    # a destroyed one has lost its wrapped key for good (crypto-shredding).
    op.execute(
        """
        CREATE TABLE tenantgate.tenant_data_keys (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired', 'destroyed')),
            provider text NOT NULL,
            kek_id text NOT NULL,
            wrapped_key bytea,
            created_at timestamptz NOT NULL DEFAULT now(),
            rewrapped_at timestamptz,
            retired_at timestamptz,
            destroyed_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            CHECK ((state = 'destroyed') = (wrapped_key IS NULL)),
            CHECK ((state = 'destroyed') = (destroyed_at IS NOT NULL))
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX tenant_data_keys_one_active ON tenantgate.tenant_data_keys (tenant_id)"
        " WHERE state = 'active'"
    )
    make_tenant_owned("tenant_data_keys")

    op.execute(
        """
        CREATE TABLE tenantgate.credentials (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,99}$'),
            kind text NOT NULL
                CHECK (kind IN ('api_key', 'oauth', 'webhook_secret', 'basic_auth', 'bearer_token', 'password')),
            provider text CHECK (provider IS NULL OR length(provider) BETWEEN 1 AND 100),
            sealed jsonb NOT NULL CHECK (jsonb_typeof(sealed) = 'object'),
            data_key_id uuid NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, name),
            FOREIGN KEY (tenant_id, data_key_id) REFERENCES tenantgate.tenant_data_keys (tenant_id, id)
        )
        """
    )
    op.execute("CREATE INDEX credentials_by_key ON tenantgate.credentials (tenant_id, data_key_id)")
    make_tenant_owned("credentials")


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
