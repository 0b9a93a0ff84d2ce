"""Table definitions for queries. The DDL itself lives in the migrations, as SQL."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, BYTEA, JSONB, TIMESTAMP, TSVECTOR, UUID

SCHEMA = "tenantgate"

metadata = sa.MetaData(schema=SCHEMA)

_ts = TIMESTAMP(timezone=True)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("compliance_mode", sa.Text, nullable=False, server_default="standard"),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("disabled_at", _ts),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("roles", ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal_id", UUID(as_uuid=True), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", BYTEA, nullable=False),
    sa.Column("roles", ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("expires_at", _ts),
    sa.Column("revoked_at", _ts),
    sa.Column("last_used_at", _ts),
    sa.Column("rotated_from", UUID(as_uuid=True)),
)

platform_keys = sa.Table(
    "platform_keys",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", BYTEA, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("revoked_at", _ts),
    sa.Column("last_used_at", _ts),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("occurred_at", _ts, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("decision", sa.Text),
    sa.Column("code", sa.Text),
    sa.Column("tool", sa.Text),
    sa.Column("principal_id", UUID(as_uuid=True)),
    sa.Column("principal_kind", sa.Text),
    sa.Column("acting_for", UUID(as_uuid=True)),
    sa.Column("request_id", sa.Text),
    sa.Column("payload", JSONB),
    sa.Column("payload_digest", BYTEA, nullable=False),
    sa.Column("erased_at", _ts),
    sa.Column("prev_hash", BYTEA, nullable=False),
    sa.Column("hash", BYTEA, nullable=False),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", BYTEA, nullable=False),
)

tenant_policies = sa.Table(
    "tenant_policies",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", JSONB, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
)

tenant_switches = sa.Table(
    "tenant_switches",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("set_by", sa.Text, nullable=False),
    sa.Column("set_at", _ts, nullable=False),
)

platform_switches = sa.Table(
    "platform_switches",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("set_by", sa.Text, nullable=False),
    sa.Column("set_at", _ts, nullable=False),
)

confirmations = sa.Table(
    "confirmations",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("tool", sa.Text, nullable=False),
    sa.Column("args_digest", sa.Text, nullable=False),
    sa.Column("arguments", JSONB, nullable=False),
    sa.Column("requested_by", UUID(as_uuid=True), nullable=False),
    sa.Column("requested_kind", sa.Text, nullable=False),
    sa.Column("root_principal", UUID(as_uuid=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("expires_at", _ts, nullable=False),
    sa.Column("decided_by", UUID(as_uuid=True)),
    sa.Column("decided_at", _ts),
    sa.Column("used_at", _ts),
)

tenant_data_keys = sa.Table(
    "tenant_data_keys",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("kek_id", sa.Text, nullable=False),
    sa.Column("wrapped_key", BYTEA),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("rewrapped_at", _ts),
    sa.Column("retired_at", _ts),
    sa.Column("destroyed_at", _ts),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("provider", sa.Text),
    sa.Column("sealed", JSONB, nullable=False),
    sa.Column("data_key_id", UUID(as_uuid=True), nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("title", sa.Text),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("session_id", UUID(as_uuid=True), nullable=False),
    sa.Column("started_by", UUID(as_uuid=True), nullable=False),
    sa.Column("started_by_kind", sa.Text, nullable=False),
    sa.Column("execution_id", UUID(as_uuid=True), nullable=False),
    sa.Column("planner", sa.Text, nullable=False),
    sa.Column("model", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("error_code", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("confirmation_id", UUID(as_uuid=True)),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("started_at", _ts, nullable=False),
    sa.Column("finished_at", _ts),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("session_id", UUID(as_uuid=True), nullable=False),
    sa.Column("run_id", UUID(as_uuid=True)),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
)

run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("content", sa.Text),
    sa.Column("occurred_at", _ts, nullable=False),
)

# --- tenant state (migration 0005): memory, cron jobs, heartbeat tasks, skills ---------------

memory_entries = sa.Table(
    "memory_entries",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True), nullable=False),
    sa.Column("deleted_at", _ts),
    sa.Column("search", TSVECTOR, sa.Computed("generated in the migration")),
)

memory_versions = sa.Table(
    "memory_versions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("entry_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("tags", ARRAY(sa.Text), nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("changed_at", _ts, nullable=False),
    sa.Column("changed_by", UUID(as_uuid=True), nullable=False),
)

cron_jobs = sa.Table(
    "cron_jobs",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("schedule", sa.Text, nullable=False),
    sa.Column("timezone", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_run_at", _ts),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("deleted_at", _ts),
)

cron_job_versions = sa.Table(
    "cron_job_versions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("job_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", JSONB, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("changed_at", _ts, nullable=False),
    sa.Column("changed_by", UUID(as_uuid=True), nullable=False),
)

heartbeat_tasks = sa.Table(
    "heartbeat_tasks",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("every_seconds", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_due_at", _ts),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("deleted_at", _ts),
)

skill_catalog = sa.Table(
    "skill_catalog",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("published_at", _ts, nullable=False),
)

skills = sa.Table(
    "skills",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("catalog_version", sa.Integer),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("deleted_at", _ts),
)

skill_versions = sa.Table(
    "skill_versions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("skill_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("catalog_version", sa.Integer),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("changed_at", _ts, nullable=False),
    sa.Column("changed_by", UUID(as_uuid=True), nullable=False),
)

quota_plans = sa.Table(
    "quota_plans",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("limits", JSONB, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

tenant_limits = sa.Table(
    "tenant_limits",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("plan", sa.Text),
    sa.Column("overrides", JSONB, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

budget_counters = sa.Table(
    "budget_counters",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("counter", sa.Text, primary_key=True),
    sa.Column("period_start", _ts, primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("storage_key", sa.Text, nullable=False),
    sa.Column("created_by", UUID(as_uuid=True), nullable=False),
    sa.Column("created_by_kind", sa.Text, nullable=False),
    sa.Column("run_id", UUID(as_uuid=True)),
    sa.Column("retention_class", sa.Text, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
)

# --- artifact URL revocation (migration 0010) ---
artifacts.append_column(sa.Column("url_generation", sa.Integer, nullable=False, server_default="0"))

# --- lifecycle: soft delete and versions (migration 0011) ------------------------------------

heartbeat_tasks.append_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))
credentials.append_column(sa.Column("deleted_at", _ts))
credentials.append_column(sa.Column("version", sa.Integer, nullable=False, server_default="1"))

heartbeat_task_versions = sa.Table(
    "heartbeat_task_versions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("task_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", JSONB, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("changed_at", _ts, nullable=False),
    sa.Column("changed_by", UUID(as_uuid=True), nullable=False),
)

credential_versions = sa.Table(
    "credential_versions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("credential_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("provider", sa.Text),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("fields", ARRAY(sa.Text), nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("changed_at", _ts, nullable=False),
    sa.Column("changed_by", UUID(as_uuid=True), nullable=False),
)

# --- run resumption (migration 0015) ---

run_holds = sa.Table(
    "run_holds",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("confirmation_id", UUID(as_uuid=True), nullable=False),
    sa.Column("principal_id", UUID(as_uuid=True), nullable=False),
    sa.Column("principal_kind", sa.Text, nullable=False),
    sa.Column("roles", ARRAY(sa.Text), nullable=False),
    sa.Column("state", JSONB, nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("expires_at", _ts, nullable=False),
)

# --- retention (migration 0012) ------------------------------------------------------------

retention_settings = sa.Table(
    "retention_settings",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("data_class", sa.Text, primary_key=True),
    sa.Column("days", sa.Integer),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True), nullable=False),
)

# --- observe: alerts (migration 0016) ---

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("window_start", _ts, nullable=False),
    sa.Column("window_s", sa.Integer, nullable=False),
    sa.Column("threshold", sa.Integer, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("response", sa.Text),
    sa.Column("response_result", sa.Text),
    sa.Column("notified_at", _ts),
    sa.Column("notify_attempts", sa.Integer, nullable=False),
    sa.Column("notify_error", sa.Text),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("acknowledged_at", _ts),
    sa.Column("acknowledged_by", UUID(as_uuid=True)),
)

alert_settings = sa.Table(
    "alert_settings",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("settings", JSONB, nullable=False),
    sa.Column("updated_at", _ts, nullable=False),
    sa.Column("updated_by", UUID(as_uuid=True), nullable=False),
)

# --- console (migration 0014) ---

console_passwords = sa.Table(
    "console_passwords",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("principal_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("salt", BYTEA, nullable=False),
    sa.Column("hash", BYTEA, nullable=False),
    sa.Column("scrypt_n", sa.Integer, nullable=False),
    sa.Column("scrypt_r", sa.Integer, nullable=False),
    sa.Column("scrypt_p", sa.Integer, nullable=False),
    sa.Column("set_at", _ts, nullable=False),
    sa.Column("set_by", UUID(as_uuid=True), nullable=False),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("token_hash", BYTEA, nullable=False),
    sa.Column("principal_id", UUID(as_uuid=True), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("last_seen_at", _ts, nullable=False),
    sa.Column("expires_at", _ts, nullable=False),
    sa.Column("revoked_at", _ts),
    sa.UniqueConstraint("tenant_id", "token_hash"),  # per tenant since 0018 (the Citus shape)
)

console_platform_sessions = sa.Table(
    "console_platform_sessions",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("token_hash", BYTEA, nullable=False, unique=True),
    sa.Column("key_id", UUID(as_uuid=True), nullable=False),
    sa.Column("created_at", _ts, nullable=False),
    sa.Column("last_seen_at", _ts, nullable=False),
    sa.Column("expires_at", _ts, nullable=False),
    sa.Column("revoked_at", _ts),
)

# --- purge by tenant (migration 0013) ---------------------------------------------------------

tenant_purges = sa.Table(
    "tenant_purges",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("requested_at", _ts, nullable=False),
    sa.Column("execute_after", _ts, nullable=False),
    sa.Column("previous_status", sa.Text, nullable=False),
    sa.Column("cancelled_by", sa.Text),
    sa.Column("cancelled_at", _ts),
    sa.Column("executed_by", sa.Text),
    sa.Column("started_at", _ts),
    sa.Column("finished_at", _ts),
    sa.Column("steps", ARRAY(sa.Text), nullable=False),
    sa.Column("report", JSONB, nullable=False),
)
