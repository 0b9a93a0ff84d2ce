"""Run holds: what a run waiting for a human's confirmation needs to continue after approval.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per run in ``awaiting_confirmation``: the conversation so far, the held call and the
    # calls after it, and the starting principal (the resumed run acts for it again). Deleted when
    # the run resumes or ends, so tool content sits here only while a human decides.
    op.execute(
        """
        CREATE TABLE tenantgate.run_holds (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            run_id uuid NOT NULL,
            confirmation_id uuid NOT NULL,
            principal_id uuid NOT NULL,
            principal_kind text NOT NULL CHECK (principal_kind IN ('user', 'service_account', 'system')),
            roles text[] NOT NULL,
            state jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, run_id),
            UNIQUE (tenant_id, confirmation_id),
            FOREIGN KEY (tenant_id, run_id) REFERENCES tenantgate.runs (tenant_id, id)
        )
        """
    )
    op.execute("CREATE INDEX run_holds_expiry ON tenantgate.run_holds (expires_at)")
    make_tenant_owned("run_holds", app_privileges=["SELECT", "INSERT", "DELETE"])


def downgrade() -> None:
    op.execute("DROP TABLE tenantgate.run_holds")
