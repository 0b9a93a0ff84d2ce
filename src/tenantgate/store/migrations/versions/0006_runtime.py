"""The agent runtime: sessions, messages, runs and run events.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE tenantgate.sessions (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            channel text NOT NULL DEFAULT 'http' CHECK (channel ~ '^[a-z][a-z0-9_-]{0,62}$'),
            title text CHECK (length(title) <= 200),
            created_by uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id)
        )
        """
    )
    make_tenant_owned("sessions", app_privileges=["SELECT", "INSERT"])

    # One agent turn. The AI execution context it ran as is (execution_id, acting for started_by).
    op.execute(
        """
        CREATE TABLE tenantgate.runs (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            session_id uuid NOT NULL,
            started_by uuid NOT NULL,
            started_by_kind text NOT NULL,
            execution_id uuid NOT NULL,
            planner text NOT NULL,
            model text,
            status text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'completed', 'awaiting_confirmation', 'failed', 'cancelled')),
            error_code text,
            reason text CHECK (length(reason) <= 2000),
            steps integer NOT NULL DEFAULT 0,
            input_tokens bigint NOT NULL DEFAULT 0,
            output_tokens bigint NOT NULL DEFAULT 0,
            confirmation_id uuid,
            cancel_requested boolean NOT NULL DEFAULT false,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, session_id) REFERENCES tenantgate.sessions (tenant_id, id)
        )
        """
    )
    op.execute("CREATE INDEX runs_by_session ON tenantgate.runs (tenant_id, session_id, started_at)")
    make_tenant_owned("runs", app_privileges=["SELECT", "INSERT", "UPDATE"])

    op.execute(
        """
        CREATE TABLE tenantgate.messages (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            seq bigint GENERATED ALWAYS AS IDENTITY,
            session_id uuid NOT NULL,
            run_id uuid,
            role text NOT NULL CHECK (role IN ('user', 'assistant')),
            kind text NOT NULL DEFAULT 'text' CHECK (kind IN ('text', 'outbound')),
            content text NOT NULL CHECK (length(content) <= 100000),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            FOREIGN KEY (tenant_id, session_id) REFERENCES tenantgate.sessions (tenant_id, id),
            FOREIGN KEY (tenant_id, run_id) REFERENCES tenantgate.runs (tenant_id, id)
        )
        """
    )
    op.execute("CREATE INDEX messages_by_session ON tenantgate.messages (tenant_id, session_id, seq)")
    make_tenant_owned("messages", app_privileges=["SELECT", "INSERT"])

    # Each step of a run, in order. Raw tool content sits in its own column, referenced from
    # ``data`` by digest and size, so listings and logs never carry it.
    op.execute(
        """
        CREATE TABLE tenantgate.run_events (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            run_id uuid NOT NULL,
            seq integer NOT NULL CHECK (seq > 0),
            kind text NOT NULL,
            data jsonb NOT NULL,
            content text,
            occurred_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, run_id, seq),
            FOREIGN KEY (tenant_id, run_id) REFERENCES tenantgate.runs (tenant_id, id)
        )
        """
    )
    make_tenant_owned("run_events", app_privileges=["SELECT", "INSERT"])


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
