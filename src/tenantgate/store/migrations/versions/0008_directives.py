"""Directives (durable side effects), signals (the durable event log), webhook endpoints, and
procrastinate's job queue in its own ``procrastinate`` schema.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.sql.compiler import IdentifierPreparer

from tenantgate.store.rls import make_tenant_owned

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

QUEUE_SCHEMA = "procrastinate"


def upgrade() -> None:
    # One side effect, recorded before it happens. ``idempotency_key`` is unique per tenant:
    # a second request with the same key finds this row and gets its outcome, never a second
    # effect. ``lease_until`` bounds a claim: a worker killed mid-call loses its claim when the
    # lease runs out, and the next attempt re-sends with the same provider idempotency key.
    op.execute(
        """
        CREATE TABLE tenantgate.directives (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            tool text NOT NULL,
            arguments jsonb NOT NULL,
            args_digest text NOT NULL,
            idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
            principal_id uuid NOT NULL,
            principal_kind text NOT NULL,
            roles text[] NOT NULL,
            acting_for uuid,
            acting_for_kind text,
            run_id uuid,
            call_id uuid NOT NULL,
            status text NOT NULL DEFAULT 'requested'
                CHECK (status IN ('requested', 'running', 'succeeded', 'failed', 'canceled')),
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
            lease_until timestamptz,
            last_error text CHECK (length(last_error) <= 2000),
            result jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, idempotency_key)
        )
        """
    )
    op.execute(
        "CREATE INDEX directives_open ON tenantgate.directives (tenant_id, status)"
        " WHERE status IN ('requested', 'running')"
    )
    make_tenant_owned("directives", app_privileges=["SELECT", "INSERT", "UPDATE"])

    # The durable event log. ``dedupe_key`` (the provider's event id, or the source's own key)
    # makes a replayed delivery a no-op.
    op.execute(
        """
        CREATE TABLE tenantgate.signals (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            type text NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.]{0,80}@v[0-9]{1,4}$'),
            source text NOT NULL CHECK (length(source) <= 200),
            source_event_id text CHECK (length(source_event_id) <= 300),
            dedupe_key text NOT NULL CHECK (length(dedupe_key) BETWEEN 1 AND 400),
            payload jsonb NOT NULL,
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            processed_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, dedupe_key)
        )
        """
    )
    make_tenant_owned("signals", app_privileges=["SELECT", "INSERT", "UPDATE"])

    # An inbound webhook endpoint: its public id routes to a tenant and a sealed secret. The
    # extra SELECT policy lets the webhook edge read exactly the one endpoint it names (as the
    # API key prefix lookup does) before it knows the tenant.
    op.execute(
        """
        CREATE TABLE tenantgate.webhook_endpoints (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            provider text NOT NULL CHECK (provider IN ('standard', 'stripe', 'whatsapp')),
            credential_name text NOT NULL,
            verify_token_digest text,
            phone_number_id text,
            principal_id uuid,
            tolerance_s integer NOT NULL DEFAULT 300 CHECK (tolerance_s BETWEEN 1 AND 3600),
            created_by uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (id),
            CHECK (provider <> 'whatsapp' OR (phone_number_id IS NOT NULL AND principal_id IS NOT NULL))
        )
        """
    )
    # One tenant per WhatsApp number, among enabled endpoints: a message has one owner.
    op.execute(
        "CREATE UNIQUE INDEX webhook_endpoints_whatsapp_number ON tenantgate.webhook_endpoints (phone_number_id)"
        " WHERE provider = 'whatsapp' AND disabled_at IS NULL"
    )
    make_tenant_owned("webhook_endpoints", app_privileges=["SELECT", "INSERT", "UPDATE"])
    op.execute(
        """
        CREATE POLICY webhook_endpoint_lookup ON tenantgate.webhook_endpoints FOR SELECT
        USING (id = nullif(current_setting('tenantgate.webhook_endpoint', true), '')::uuid)
        """
    )

    # What the worker records when it runs a due cron job or heartbeat task as an agent turn.
    for table in ("cron_jobs", "heartbeat_tasks"):
        op.execute(
            f"""
            ALTER TABLE tenantgate.{table}
                ADD COLUMN last_run_at timestamptz,
                ADD COLUMN last_status text
                    CHECK (last_status IN ('completed', 'awaiting_confirmation', 'failed', 'cancelled')),
                ADD COLUMN last_error text CHECK (length(last_error) <= 2000)
            """
        )

    _queue_schema()


def _queue_schema() -> None:
    """procrastinate's tables and functions, in their own schema, usable by the app role."""
    roles = op.get_context().opts["tenantgate_roles"]
    q = IdentifierPreparer(op.get_bind().dialect).quote
    op.execute(f"CREATE SCHEMA {QUEUE_SCHEMA}")
    # procrastinate's SQL names its objects unqualified: create them inside its schema.
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(f"SET LOCAL search_path TO {QUEUE_SCHEMA}")
        cursor.execute(SchemaManager.get_schema().encode())
        cursor.execute("SET LOCAL search_path TO DEFAULT")
    for role in (roles.app, roles.admin):
        op.execute(f"GRANT USAGE ON SCHEMA {QUEUE_SCHEMA} TO {q(role)}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {QUEUE_SCHEMA} TO {q(role)}")
        op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {QUEUE_SCHEMA} TO {q(role)}")
        op.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {QUEUE_SCHEMA} TO {q(role)}")


def downgrade() -> None:
    op.execute(f"DROP SCHEMA IF EXISTS {QUEUE_SCHEMA} CASCADE")
    op.execute("DROP TABLE IF EXISTS tenantgate.webhook_endpoints")
    op.execute("DROP TABLE IF EXISTS tenantgate.signals")
    op.execute("DROP TABLE IF EXISTS tenantgate.directives")
