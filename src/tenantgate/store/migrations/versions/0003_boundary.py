"""The capability boundary: compliance mode, versioned tenant policies, kill switches, confirmations.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import grant_platform_only, make_tenant_owned

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE tenantgate.tenants ADD COLUMN compliance_mode text NOT NULL DEFAULT 'standard'
            CHECK (compliance_mode IN ('standard', 'hipaa', 'gdpr'))
        """
    )

    # Every policy change is a new version; old versions are history and never change.
    op.execute(
        """
        CREATE TABLE tenantgate.tenant_policies (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            version integer NOT NULL CHECK (version > 0),
            document jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, version)
        )
        """
    )
    make_tenant_owned("tenant_policies", app_privileges=["SELECT", "INSERT"])

    op.execute(
        """
        CREATE TABLE tenantgate.tenant_switches (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            scope text NOT NULL CHECK (scope IN ('all', 'ai', 'tool', 'integration')),
            target text NOT NULL CHECK ((scope IN ('all', 'ai')) = (target = '')),
            reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
            set_by text NOT NULL,
            set_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, scope, target)
        )
        """
    )
    make_tenant_owned("tenant_switches")

    op.execute(
        """
        CREATE TABLE tenantgate.platform_switches (
            id uuid PRIMARY KEY,
            scope text NOT NULL CHECK (scope IN ('all', 'tool', 'integration')),
            target text NOT NULL CHECK ((scope = 'all') = (target = '')),
            reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
            set_by text NOT NULL,
            set_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (scope, target)
        )
        """
    )
    grant_platform_only("platform_switches")

    op.execute(
        """
        CREATE TABLE tenantgate.confirmations (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            tool text NOT NULL,
            args_digest text NOT NULL,
            arguments jsonb NOT NULL,
            requested_by uuid NOT NULL,
            requested_kind text NOT NULL,
            root_principal uuid NOT NULL,
            status text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'denied', 'used')),
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            decided_by uuid,
            decided_at timestamptz,
            used_at timestamptz,
            PRIMARY KEY (tenant_id, id)
        )
        """
    )
    op.execute("CREATE INDEX confirmations_open ON tenantgate.confirmations (tenant_id, status, expires_at)")
    make_tenant_owned("confirmations")


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
