"""Fill every tenant-owned table for one tenant, through the services where practical.

``fill_tenant`` is what the purge tests purge; ``tenant_row_counts`` reads the live catalog,
so the purge tests fail when a new tenant-owned table appears that this helper does not
fill (add it here, then the purge tests prove the purge clears it).
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import sqlalchemy as sa

from tenantgate.gate import SwitchScope
from tenantgate.installation import Services
from tests.conftest import DatabaseFixture, TenantFixture

SCHEMA = "tenantgate"

_TENANT_TABLES = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                   AND NOT a.attisdropped)
     ORDER BY c.relname
"""


def tenant_tables(test_db: DatabaseFixture) -> list[str]:
    with psycopg.connect(test_db.superuser) as conn:
        return [str(r[0]) for r in conn.execute(_TENANT_TABLES, [SCHEMA])]


def tenant_row_counts(test_db: DatabaseFixture, tenant_id: uuid.UUID) -> dict[str, int]:
    """Rows of ``tenant_id`` in every table with a tenant_id column, and in the job queue."""
    counts: dict[str, int] = {}
    with psycopg.connect(test_db.superuser) as conn:
        for table in tenant_tables(test_db):
            query = psycopg.sql.SQL("SELECT count(*) FROM {}.{} WHERE tenant_id = %s").format(
                psycopg.sql.Identifier(SCHEMA), psycopg.sql.Identifier(table)
            )
            row = conn.execute(query, [tenant_id]).fetchone()
            assert row is not None
            counts[table] = int(row[0])
        jobs = conn.execute(
            "SELECT count(*) FROM procrastinate.procrastinate_jobs WHERE args->>'tenant_id' = %s", [str(tenant_id)]
        ).fetchone()
        assert jobs is not None
        counts["procrastinate.procrastinate_jobs"] = int(jobs[0])
    return counts


def dump_tenant(test_db: DatabaseFixture, tenant_id: uuid.UUID) -> dict[str, list[str]]:
    """Every row of the tenant, every table (and its tenants row and queue jobs), as ordered JSON text."""
    dump: dict[str, list[str]] = {}
    with psycopg.connect(test_db.superuser) as conn:
        for table in tenant_tables(test_db):
            query = psycopg.sql.SQL(
                "SELECT to_jsonb(t)::text AS r FROM {}.{} t WHERE tenant_id = %s ORDER BY r"
            ).format(psycopg.sql.Identifier(SCHEMA), psycopg.sql.Identifier(table))
            dump[table] = [str(r[0]) for r in conn.execute(query, [tenant_id])]
        dump["tenants"] = [
            str(r[0])
            for r in conn.execute("SELECT to_jsonb(t)::text FROM tenantgate.tenants t WHERE id = %s", [tenant_id])
        ]
        dump["procrastinate.procrastinate_jobs"] = [
            str(r[0])
            for r in conn.execute(
                "SELECT to_jsonb(j)::text AS r FROM procrastinate.procrastinate_jobs j WHERE args->>'tenant_id' = %s"
                " ORDER BY r",
                [str(tenant_id)],
            )
        ]
    return dump


async def fill_tenant(services: Services, tenant: TenantFixture, *, secret: str) -> None:
    """At least one row of ``tenant`` in every tenant-owned table; artifacts in storage; a sealed credential."""
    ctx = tenant.system
    # Tenant state through its services.
    await services.memory.put(ctx, "customer.notes", "Prefers email. Account 4411.", title="notes", tags=["crm"])
    await services.memory.put(ctx, "customer.notes", "Prefers phone now.", title="notes", tags=["crm"])
    await services.cron.add(ctx, name="daily-report", kind="cron", schedule="0 9 * * *", message="Send the report")
    await services.heartbeat.add(ctx, name="inbox-check", prompt="Check the inbox", every_seconds=3600)
    skill = "---\nname: brief\ndescription: Be brief\nmetadata: {owner: ops}\n---\nAnswer in one line.\n"
    await services.skills.author(ctx, skill)
    await services.credentials.create(ctx, name="openai", kind="api_key", secret={"api_key": secret})
    await services.webhooks.endpoints.create(ctx, provider="standard", secret="whsec_" + secrets.token_urlsafe(24))
    await services.signals.store.record(
        ctx, type="webhook.received@v1", source="test", dedupe_key=f"evt-{uuid.uuid4()}",
        payload={"event_type": "invoice.paid", "data": {"invoice": "in_1"}}, occurred_at=datetime.now(UTC),
    )  # fmt: skip
    await services.artifacts.create(ctx, b"<html>raw page of the tenant</html>", kind="web_page")
    await services.artifacts.create(ctx, b"%PDF-1.4 a document", kind="upload")
    await services.policies.set_policy(ctx, {"egress": {"deny_domains": ["blocked.example"]}})
    await services.policies.set_tenant_switch(ctx, SwitchScope.TOOL, "echo@v1", reason="incident", set_by="test")
    await services.quotas.plans.set_tenant(tenant.id, overrides={"cron_jobs": 7})
    # A console password and an open console session of the owner.
    await services.passwords.set(ctx, tenant.owner_id, "correct horse battery staple")
    await services.console.login(tenant.tenant.name, "owner", "correct horse battery staple", request_id="fill")
    # The runtime's tables, confirmations, directives and budget counters: written as the
    # runtime writes them, in the tenant's own transaction (app role, RLS).
    session_id, run_id, execution_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    principal = tenant.owner_id
    params = {"t": tenant.id, "s": session_id, "r": run_id, "e": execution_id, "p": principal}
    statements = [
        "INSERT INTO tenantgate.sessions (tenant_id, id, channel, title, created_by)"
        " VALUES (:t, :s, 'http', 'chat', :p)",
        "INSERT INTO tenantgate.runs (tenant_id, id, session_id, started_by, started_by_kind, execution_id, planner,"
        " status) VALUES (:t, :r, :s, :p, 'user', :e, 'scripted', 'running')",
        "INSERT INTO tenantgate.messages (tenant_id, id, session_id, run_id, role, content)"
        " VALUES (:t, gen_random_uuid(), :s, :r, 'user', 'hello, my phone is 555-0100')",
        "INSERT INTO tenantgate.run_events (tenant_id, run_id, seq, kind, data, content)"
        " VALUES (:t, :r, 1, 'planner', '{}'::jsonb, 'raw tool output')",
        "INSERT INTO tenantgate.confirmations (tenant_id, id, tool, args_digest, arguments, requested_by,"
        " requested_kind, root_principal, expires_at) VALUES (:t, gen_random_uuid(), 'echo@v1', 'd', '{}'::jsonb,"
        " :p, 'user', :p, now() + interval '1 hour')",
        "INSERT INTO tenantgate.directives (tenant_id, id, tool, arguments, args_digest, idempotency_key,"
        " principal_id, principal_kind, roles, call_id, max_attempts) VALUES (:t, gen_random_uuid(), 'echo@v1',"
        " '{}'::jsonb, 'd', 'idem-1', :p, 'user', '{owner}', gen_random_uuid(), 3)",
        "INSERT INTO tenantgate.budget_counters (tenant_id, counter, period_start, used)"
        " VALUES (:t, 'tool_calls', date_trunc('day', now()), 42)",
        "INSERT INTO tenantgate.run_holds (tenant_id, run_id, confirmation_id, principal_id, principal_kind, roles,"
        " state, expires_at) VALUES (:t, :r, gen_random_uuid(), :p, 'user', '{owner}', '{}'::jsonb,"
        " now() + interval '1 hour')",
        "INSERT INTO tenantgate.alerts (tenant_id, id, rule, subject, window_start, window_s, threshold, severity,"
        " summary) VALUES (:t, gen_random_uuid(), 'denial_spike', 'tenant', now(), 60, 10, 'warning',"
        " '12 denials in a minute')",
        "INSERT INTO tenantgate.alert_settings (tenant_id, settings, updated_by) VALUES (:t, '{}'::jsonb, :p)",
        "INSERT INTO tenantgate.retention_settings (tenant_id, data_class, days, updated_by)"
        " VALUES (:t, 'messages', 30, :p)",
    ]
    async with services.db.tenant(ctx) as conn:
        for statement in statements:
            await conn.execute(sa.text(statement), params)
    # A queued job of the directive queue naming the tenant (procrastinate's own table).
    async with services.db.admin() as conn:
        await conn.execute(sa.text("SET LOCAL search_path TO procrastinate"))  # its triggers name tables unqualified
        await conn.execute(
            sa.text(
                "INSERT INTO procrastinate.procrastinate_jobs (queue_name, task_name, args, status, scheduled_at)"
                " VALUES ('directives', 'run_directive', CAST(:args AS jsonb), 'todo', :at)"
            ),
            {"args": json.dumps({"tenant_id": str(tenant.id), "directive_id": str(uuid.uuid4())}),
             "at": datetime.now(UTC) + timedelta(days=1)},
        )  # fmt: skip
    await services.audit.drain()
