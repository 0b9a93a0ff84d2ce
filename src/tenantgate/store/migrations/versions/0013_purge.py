"""Purge by tenant: the purge record (who, why, when, progress, final report) and two tenant states.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 'purging': requested, the tenant refuses every credential; 'purged': executed, the row is
    # a tombstone (name and display name erased) kept because tenant-owned tables and the
    # purge record reference it.
    op.execute("ALTER TABLE tenantgate.tenants DROP CONSTRAINT tenants_status_check")
    op.execute(
        "ALTER TABLE tenantgate.tenants ADD CONSTRAINT tenants_status_check"
        " CHECK (status IN ('active', 'suspended', 'purging', 'purged'))"
    )
    # One row per purge request. It outlives the purge (an exception to "every tenant-owned
    # row goes", stated in tenantgate.purge): it is the evidence that the purge happened.
    # ``steps`` lists the execution steps done, ``report`` accumulates counts in the same
    # transaction as the work they count, so a rerun after a crash continues exactly.
    op.execute(
        """
        CREATE TABLE tenantgate.tenant_purges (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            state text NOT NULL DEFAULT 'requested'
                CHECK (state IN ('requested', 'cancelled', 'executing', 'completed')),
            reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
            requested_by text NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 200),
            requested_at timestamptz NOT NULL DEFAULT now(),
            execute_after timestamptz NOT NULL,
            previous_status text NOT NULL CHECK (previous_status IN ('active', 'suspended')),
            cancelled_by text CHECK (length(cancelled_by) <= 200),
            cancelled_at timestamptz,
            executed_by text CHECK (length(executed_by) <= 200),
            started_at timestamptz,
            finished_at timestamptz,
            steps text[] NOT NULL DEFAULT '{}',
            report jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(report) = 'object'),
            PRIMARY KEY (tenant_id, id)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX tenant_purges_one_open ON tenantgate.tenant_purges (tenant_id)"
        " WHERE state IN ('requested', 'executing')"
    )
    op.execute(
        "CREATE INDEX tenant_purges_due ON tenantgate.tenant_purges (execute_after)"
        " WHERE state IN ('requested', 'executing')"
    )
    # Platform operations only (the admin role): the app role gets no privilege at all.
    make_tenant_owned("tenant_purges", app_privileges=[])


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
