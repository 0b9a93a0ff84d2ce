"""Alerts: anomaly rules' findings per tenant, and each tenant's alert settings.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (rule, subject, window): the unique key is what makes "exactly one alert per
    # rule window" hold across processes, whatever each process counted.
    op.execute(
        """
        CREATE TABLE tenantgate.alerts (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            rule text NOT NULL CHECK (rule ~ '^[a-z][a-z0-9_]{0,39}$'),
            subject text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
            window_start timestamptz NOT NULL,
            window_s integer NOT NULL CHECK (window_s > 0),
            threshold integer NOT NULL CHECK (threshold > 0),
            severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            summary text NOT NULL CHECK (length(summary) BETWEEN 1 AND 500),
            status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged')),
            response text CHECK (response IN ('pause_ai', 'revoke_key')),
            response_result text CHECK (length(response_result) <= 500),
            notified_at timestamptz,
            notify_attempts integer NOT NULL DEFAULT 0,
            notify_error text CHECK (length(notify_error) <= 500),
            created_at timestamptz NOT NULL DEFAULT now(),
            acknowledged_at timestamptz,
            acknowledged_by uuid,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, rule, subject, window_start)
        )
        """
    )
    op.execute("CREATE INDEX alerts_recent ON tenantgate.alerts (tenant_id, created_at DESC)")
    make_tenant_owned("alerts", app_privileges=["SELECT", "INSERT", "UPDATE"])
    # Thresholds, automatic responses and sinks, per tenant; no row means the defaults.
    op.execute(
        """
        CREATE TABLE tenantgate.alert_settings (
            tenant_id uuid PRIMARY KEY REFERENCES tenantgate.tenants (id),
            settings jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid NOT NULL
        )
        """
    )
    make_tenant_owned("alert_settings", app_privileges=["SELECT", "INSERT", "UPDATE"])


def downgrade() -> None:
    op.execute("DROP TABLE tenantgate.alert_settings")
    op.execute("DROP TABLE tenantgate.alerts")
