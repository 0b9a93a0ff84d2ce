"""Retention: each tenant's overrides of the platform's retention periods, by data class.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A row overrides the platform default for one class; no row means "the default".
    # days NULL is "keep forever". Bounds are checked here too, not only in the service.
    op.execute(
        """
        CREATE TABLE tenantgate.retention_settings (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            data_class text NOT NULL
                CHECK (data_class IN ('run_events', 'messages', 'artifacts', 'audit_payloads', 'soft_deleted')),
            days integer CHECK (days BETWEEN 1 AND 36500),
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, data_class)
        )
        """
    )
    make_tenant_owned("retention_settings")
    # The retention job finds aged rows by time within a tenant; these keep its batches cheap.
    op.execute("CREATE INDEX IF NOT EXISTS messages_retention ON tenantgate.messages (tenant_id, created_at)")
    op.execute("CREATE INDEX IF NOT EXISTS run_events_retention ON tenantgate.run_events (tenant_id, occurred_at)")
    op.execute(
        "CREATE INDEX IF NOT EXISTS audit_events_retention ON tenantgate.audit_events (tenant_id, occurred_at)"
        " WHERE erased_at IS NULL"
    )


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
