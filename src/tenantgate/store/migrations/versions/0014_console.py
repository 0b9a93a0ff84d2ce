"""The admin console: user console passwords, console sessions (tenant and platform).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import grant_platform_only, make_tenant_owned

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A console password per user principal: scrypt with a per-user salt; the parameters are
    # stored with the hash so they can be raised later without breaking existing passwords.
    op.execute(
        """
        CREATE TABLE tenantgate.console_passwords (
            tenant_id uuid NOT NULL,
            principal_id uuid NOT NULL,
            salt bytea NOT NULL CHECK (length(salt) = 16),
            hash bytea NOT NULL CHECK (length(hash) = 32),
            scrypt_n integer NOT NULL CHECK (scrypt_n >= 16384),
            scrypt_r integer NOT NULL CHECK (scrypt_r >= 8),
            scrypt_p integer NOT NULL CHECK (scrypt_p >= 1),
            set_at timestamptz NOT NULL DEFAULT now(),
            set_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, principal_id),
            FOREIGN KEY (tenant_id, principal_id) REFERENCES tenantgate.principals (tenant_id, id)
                ON DELETE CASCADE
        )
        """
    )
    make_tenant_owned("console_passwords")
    # Only a hash of the session token is stored; the cookie names the tenant, so the lookup
    # runs inside that tenant's row security like every other tenant query.
    op.execute(
        """
        CREATE TABLE tenantgate.console_sessions (
            tenant_id uuid NOT NULL,
            id uuid NOT NULL,
            token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
            principal_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, principal_id) REFERENCES tenantgate.principals (tenant_id, id)
                ON DELETE CASCADE
        )
        """
    )
    op.execute("CREATE INDEX console_sessions_principal ON tenantgate.console_sessions (tenant_id, principal_id)")
    make_tenant_owned("console_sessions")
    # Login names a tenant before any tenant is known: a SELECT-only policy admits exactly the
    # tenant row whose name the transaction named (as auth_prefix_lookup does for API keys).
    op.execute(
        """
        CREATE POLICY console_login_lookup ON tenantgate.tenants FOR SELECT
        USING (name = current_setting('tenantgate.auth_tenant_name', true))
        """
    )
    op.execute(
        """
        CREATE TABLE tenantgate.console_platform_sessions (
            id uuid PRIMARY KEY,
            token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
            key_id uuid NOT NULL REFERENCES tenantgate.platform_keys (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_seen_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            revoked_at timestamptz
        )
        """
    )
    grant_platform_only("console_platform_sessions")


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
