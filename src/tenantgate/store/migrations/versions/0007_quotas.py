"""Quotas: plans (platform), each tenant's plan and overrides, and durable budget counters.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from tenantgate.store._roles import RoleNames
from tenantgate.store.rls import grant_platform_only, make_tenant_owned

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plan is platform data: the admin role writes it. The app role may read plans (they
    # hold no tenant data) so a tenant's limits resolve in its own transaction.
    op.execute(
        """
        CREATE TABLE tenantgate.quota_plans (
            name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
            limits jsonb NOT NULL CHECK (jsonb_typeof(limits) = 'object'),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    grant_platform_only("quota_plans")
    roles = op.get_context().opts["tenantgate_roles"]
    assert isinstance(roles, RoleNames)
    op.execute(f'GRANT SELECT ON tenantgate.quota_plans TO "{roles.app}"')

    # Tenants must never raise their own limits: the app role may only read its tenant's row.
    op.execute(
        """
        CREATE TABLE tenantgate.tenant_limits (
            tenant_id uuid PRIMARY KEY REFERENCES tenantgate.tenants (id),
            plan text REFERENCES tenantgate.quota_plans (name),
            overrides jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(overrides) = 'object'),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    make_tenant_owned("tenant_limits", app_privileges=["SELECT"])

    # One row per (tenant, counter, period): reservations are one conditional upsert on it.
    op.execute(
        """
        CREATE TABLE tenantgate.budget_counters (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            counter text NOT NULL CHECK (counter ~ '^[a-z][a-z0-9_]{0,62}$'),
            period_start timestamptz NOT NULL,
            used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, counter, period_start)
        )
        """
    )
    make_tenant_owned("budget_counters", app_privileges=["SELECT", "INSERT", "UPDATE"])


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
