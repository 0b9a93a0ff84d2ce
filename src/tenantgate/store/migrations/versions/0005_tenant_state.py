"""Tenant state for the built-in tools: memory, cron jobs, skills, heartbeat tasks.

Every definition keeps its history: each change writes a version row in the same
transaction, and version rows are INSERT/SELECT only for the app role, so a later soft
delete and restore can rebuild any earlier state.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.sql.compiler import IdentifierPreparer

from tenantgate.store.rls import grant_platform_only, make_tenant_owned

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_HISTORY = ["SELECT", "INSERT"]


def upgrade() -> None:
    # --- memory ---------------------------------------------------------------------------
    # The search column is generated from key, title and content; tags are filtered with
    # their own GIN index (array_to_string is not immutable, so they cannot join it).
    op.execute(
        """
        CREATE TABLE tenantgate.memory_entries (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            key text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
            title text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
            content text NOT NULL CHECK (length(content) BETWEEN 1 AND 20000),
            tags text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 20),
            version integer NOT NULL CHECK (version > 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by uuid NOT NULL,
            deleted_at timestamptz,
            search tsvector GENERATED ALWAYS AS (
                setweight(to_tsvector('english'::regconfig, title), 'A')
                || setweight(to_tsvector('english'::regconfig, replace(key, '_', ' ')), 'A')
                || setweight(to_tsvector('english'::regconfig, content), 'B')
            ) STORED,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, key)
        )
        """
    )
    op.execute("CREATE INDEX memory_entries_search ON tenantgate.memory_entries USING gin (search)")
    op.execute("CREATE INDEX memory_entries_tags ON tenantgate.memory_entries USING gin (tags)")
    make_tenant_owned("memory_entries", app_privileges=["SELECT", "INSERT", "UPDATE"])

    op.execute(
        """
        CREATE TABLE tenantgate.memory_versions (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            entry_id uuid NOT NULL,
            version integer NOT NULL CHECK (version > 0),
            key text NOT NULL,
            title text NOT NULL,
            content text NOT NULL,
            tags text[] NOT NULL,
            change text NOT NULL CHECK (change IN ('created', 'updated', 'deleted', 'restored')),
            changed_at timestamptz NOT NULL DEFAULT now(),
            changed_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, entry_id, version),
            FOREIGN KEY (tenant_id, entry_id) REFERENCES tenantgate.memory_entries (tenant_id, id)
        )
        """
    )
    make_tenant_owned("memory_versions", app_privileges=_HISTORY)

    # --- cron jobs ------------------------------------------------------------------------
    op.execute(
        """
        CREATE TABLE tenantgate.cron_jobs (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            kind text NOT NULL CHECK (kind IN ('at', 'every', 'cron')),
            schedule text NOT NULL CHECK (length(schedule) BETWEEN 1 AND 200),
            timezone text NOT NULL CHECK (length(timezone) BETWEEN 1 AND 64),
            message text NOT NULL CHECK (length(message) BETWEEN 1 AND 4000),
            enabled boolean NOT NULL DEFAULT true,
            next_run_at timestamptz,
            version integer NOT NULL CHECK (version > 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz,
            PRIMARY KEY (tenant_id, id)
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX cron_jobs_name ON tenantgate.cron_jobs (tenant_id, name) WHERE deleted_at IS NULL")
    # The worker's scan for due jobs (a later issue) reads this index.
    op.execute("CREATE INDEX cron_jobs_due ON tenantgate.cron_jobs (next_run_at) WHERE deleted_at IS NULL AND enabled")
    make_tenant_owned("cron_jobs", app_privileges=["SELECT", "INSERT", "UPDATE"])

    op.execute(
        """
        CREATE TABLE tenantgate.cron_job_versions (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            job_id uuid NOT NULL,
            version integer NOT NULL CHECK (version > 0),
            definition jsonb NOT NULL,
            change text NOT NULL CHECK (change IN ('created', 'updated', 'removed', 'restored')),
            changed_at timestamptz NOT NULL DEFAULT now(),
            changed_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, job_id, version),
            FOREIGN KEY (tenant_id, job_id) REFERENCES tenantgate.cron_jobs (tenant_id, id)
        )
        """
    )
    make_tenant_owned("cron_job_versions", app_privileges=_HISTORY)

    # --- heartbeat tasks ------------------------------------------------------------------
    op.execute(
        """
        CREATE TABLE tenantgate.heartbeat_tasks (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
            prompt text NOT NULL CHECK (length(prompt) BETWEEN 1 AND 4000),
            every_seconds integer NOT NULL CHECK (every_seconds > 0),
            enabled boolean NOT NULL DEFAULT true,
            next_due_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz,
            PRIMARY KEY (tenant_id, id)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX heartbeat_tasks_name ON tenantgate.heartbeat_tasks (tenant_id, name)"
        " WHERE deleted_at IS NULL"
    )
    op.execute(
        "CREATE INDEX heartbeat_tasks_due ON tenantgate.heartbeat_tasks (next_due_at)"
        " WHERE deleted_at IS NULL AND enabled"
    )
    make_tenant_owned("heartbeat_tasks", app_privileges=["SELECT", "INSERT", "UPDATE"])

    # --- skills ---------------------------------------------------------------------------
    # The platform catalog: written by operators (admin role), read by every tenant.
    op.execute(
        """
        CREATE TABLE tenantgate.skill_catalog (
            name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
            version integer NOT NULL CHECK (version > 0),
            description text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            source text NOT NULL,
            published_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    grant_platform_only("skill_catalog")
    roles = op.get_context().opts["tenantgate_roles"]
    app = IdentifierPreparer(op.get_bind().dialect).quote(roles.app)
    op.execute(f"GRANT SELECT ON tenantgate.skill_catalog TO {app}")

    op.execute(
        """
        CREATE TABLE tenantgate.skills (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            id uuid NOT NULL,
            name text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
            description text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            source text NOT NULL,
            origin text NOT NULL CHECK (origin IN ('catalog', 'tenant')),
            catalog_version integer,
            enabled boolean NOT NULL DEFAULT true,
            version integer NOT NULL CHECK (version > 0),
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by uuid NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            deleted_at timestamptz,
            PRIMARY KEY (tenant_id, id),
            CHECK ((origin = 'catalog') = (catalog_version IS NOT NULL))
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX skills_name ON tenantgate.skills (tenant_id, name) WHERE deleted_at IS NULL")
    make_tenant_owned("skills", app_privileges=["SELECT", "INSERT", "UPDATE"])

    op.execute(
        """
        CREATE TABLE tenantgate.skill_versions (
            tenant_id uuid NOT NULL REFERENCES tenantgate.tenants (id),
            skill_id uuid NOT NULL,
            version integer NOT NULL CHECK (version > 0),
            source text NOT NULL,
            origin text NOT NULL,
            catalog_version integer,
            enabled boolean NOT NULL,
            change text NOT NULL CHECK (change IN ('installed', 'authored', 'updated', 'enabled', 'disabled',
                                                   'removed', 'restored')),
            changed_at timestamptz NOT NULL DEFAULT now(),
            changed_by uuid NOT NULL,
            PRIMARY KEY (tenant_id, skill_id, version),
            FOREIGN KEY (tenant_id, skill_id) REFERENCES tenantgate.skills (tenant_id, id)
        )
        """
    )
    make_tenant_owned("skill_versions", app_privileges=_HISTORY)


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
