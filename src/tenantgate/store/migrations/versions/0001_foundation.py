"""Foundation: tenants, principals, memberships, API keys, platform keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import grant_platform_only, make_tenant_owned

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenantgate.tenants (
            id uuid PRIMARY KEY,
            name text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
            display_name text NOT NULL,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # A tenant sees its own row (status checks at authentication); only the admin role writes.
    make_tenant_owned("tenants", column="id", app_privileges=["SELECT"])

    op.execute(
        """
        CREATE TABLE tenantgate.principals (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('user', 'service_account', 'ai_execution', 'system')),
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            external_id text CHECK (length(external_id) BETWEEN 1 AND 500),
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, external_id)
        )
        """
    )
    make_tenant_owned("principals")

    op.execute(
        """
        CREATE TABLE tenantgate.memberships (
            tenant_id uuid NOT NULL,
            principal_id uuid NOT NULL,
            roles text[] NOT NULL CHECK (
                cardinality(roles) > 0 AND roles <@ ARRAY['owner', 'admin', 'member']::text[]
            ),
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, principal_id),
            FOREIGN KEY (tenant_id, principal_id) REFERENCES tenantgate.principals (tenant_id, id)
                ON DELETE CASCADE
        )
        """
    )
    make_tenant_owned("memberships")

    op.execute(
        """
        CREATE TABLE tenantgate.api_keys (
            tenant_id uuid NOT NULL,
            id uuid NOT NULL,
            principal_id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) <= 200),
            prefix text NOT NULL UNIQUE,
            secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
            roles text[] NOT NULL CHECK (
                cardinality(roles) > 0 AND roles <@ ARRAY['owner', 'admin', 'member']::text[]
            ),
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            revoked_at timestamptz,
            last_used_at timestamptz,
            rotated_from uuid,
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, principal_id) REFERENCES tenantgate.principals (tenant_id, id)
                ON DELETE CASCADE
        )
        """
    )
    op.execute("CREATE INDEX api_keys_principal ON tenantgate.api_keys (tenant_id, principal_id)")
    make_tenant_owned("api_keys")
    # Authentication reads one key by its public prefix before the tenant is known: a
    # second, SELECT-only policy admits exactly the row whose prefix the transaction named.
    op.execute(
        """
        CREATE POLICY auth_prefix_lookup ON tenantgate.api_keys FOR SELECT
        USING (prefix = current_setting('tenantgate.auth_key_prefix', true))
        """
    )

    op.execute(
        """
        CREATE TABLE tenantgate.platform_keys (
            id uuid PRIMARY KEY,
            name text NOT NULL CHECK (length(name) <= 200),
            prefix text NOT NULL UNIQUE,
            secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz,
            last_used_at timestamptz
        )
        """
    )
    grant_platform_only("platform_keys")


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
