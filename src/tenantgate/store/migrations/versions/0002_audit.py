"""Audit log: hash-chained, append-only events per tenant, and the per-tenant chain head.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from tenantgate.store.rls import make_tenant_owned, reserve_for_admin

# The platform's own audit chain (tenant creation, platform keys, unknown-key refusals).
PLATFORM_CHAIN = "00000000-0000-0000-0000-000000000000"

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key to tenants: the platform chain uses the all-zero tenant id, which has
    # no tenants row, and a tenant's audit trail must outlive the tenant's other rows.
    op.execute(
        r"""
        CREATE TABLE tenantgate.audit_events (
            tenant_id uuid NOT NULL,
            seq bigint NOT NULL CHECK (seq > 0),
            occurred_at timestamptz NOT NULL,
            action text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
            decision text CHECK (
                decision IN ('allow', 'deny', 'confirm', 'succeeded', 'failed', 'timeout')
            ),
            code text,
            tool text,
            principal_id uuid,
            principal_kind text,
            acting_for uuid,
            request_id text,
            payload jsonb,
            payload_digest bytea NOT NULL CHECK (length(payload_digest) = 32),
            erased_at timestamptz,
            prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
            hash bytea NOT NULL CHECK (length(hash) = 32),
            PRIMARY KEY (tenant_id, seq)
        )
        """
    )
    # Time-window reads (page since/until, export --since) and the common "show me every
    # key.revoked" filter; appends pay for these two indexes, measured in bench_audit.py.
    op.execute("CREATE INDEX audit_events_time ON tenantgate.audit_events (tenant_id, occurred_at)")
    op.execute("CREATE INDEX audit_events_action ON tenantgate.audit_events (tenant_id, action, seq)")
    # Evidence: the app role may add and read events, never change or remove them.
    make_tenant_owned("audit_events", app_privileges=["SELECT", "INSERT"])
    reserve_for_admin("audit_events", value=PLATFORM_CHAIN)

    # One row per chain. Locking it (SELECT ... FOR UPDATE) is what serialises appends to a
    # tenant's chain across processes; it is bookkeeping, not evidence, so the app role may
    # update it. verify() compares it with the last event to catch a truncated tail.
    op.execute(
        """
        CREATE TABLE tenantgate.audit_heads (
            tenant_id uuid PRIMARY KEY,
            seq bigint NOT NULL CHECK (seq >= 0),
            hash bytea NOT NULL CHECK (length(hash) = 32)
        )
        """
    )
    make_tenant_owned("audit_heads", app_privileges=["SELECT", "INSERT", "UPDATE"])
    reserve_for_admin("audit_heads", value=PLATFORM_CHAIN)

    # Group commit writes several tenants' chains in one transaction (tenantgate.audit._group).
    # Row-level security allows one tenant per statement, so these loop over the chains and
    # enter each chain's tenant before its statements: every row still passes that tenant's
    # policy. SECURITY INVOKER: they run with the caller's rights and grant nothing (EXECUTE
    # stays with PUBLIC, as for any function). A batch travels as one JSON document: one
    # statement and one parameter instead of four statements per chain from the client,
    # which is what the benchmark's 16-tenant case needs (benchmarks/README.md).
    op.execute(
        """
        CREATE FUNCTION tenantgate.audit_lock_heads(p_chains jsonb)
        RETURNS TABLE (head_tenant uuid, head_seq bigint, head_hash bytea)
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
        AS $$
        DECLARE
            chain uuid;
        BEGIN
            FOR chain IN SELECT c::uuid FROM jsonb_array_elements_text(p_chains) AS c LOOP
                PERFORM set_config('tenantgate.tenant_id', chain::text, true);
                -- Never wait: a head held elsewhere is left out, and written on its own later.
                RETURN QUERY
                    SELECT h.tenant_id, h.seq, h.hash FROM tenantgate.audit_heads h
                     WHERE h.tenant_id = chain FOR UPDATE SKIP LOCKED;
            END LOOP;
        END
        $$
        """
    )
    # p_batch: [[tenant_id, head_seq, head_hash_hex, [[seq, occurred_at, action, decision, code,
    # tool, principal_id, principal_kind, acting_for, request_id, payload_text, payload_digest_hex,
    # prev_hash_hex, hash_hex], ...]], ...]
    op.execute(
        """
        CREATE FUNCTION tenantgate.audit_write(p_batch jsonb) RETURNS void
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
        AS $$
        DECLARE
            chain jsonb;
            chain_id uuid;
        BEGIN
            FOR chain IN SELECT c FROM jsonb_array_elements(p_batch) AS c LOOP
                chain_id := (chain->>0)::uuid;
                PERFORM set_config('tenantgate.tenant_id', chain_id::text, true);
                -- One statement moves the head and inserts the events; no head, no events.
                WITH moved AS (
                    UPDATE tenantgate.audit_heads SET seq = (chain->>1)::bigint, hash = decode(chain->>2, 'hex')
                     WHERE tenant_id = chain_id
                    RETURNING tenant_id
                )
                INSERT INTO tenantgate.audit_events (
                    tenant_id, seq, occurred_at, action, decision, code, tool, principal_id, principal_kind,
                    acting_for, request_id, payload, payload_digest, prev_hash, hash
                )
                SELECT moved.tenant_id, (e->>0)::bigint, (e->>1)::timestamptz, e->>2, e->>3, e->>4, e->>5,
                       (e->>6)::uuid, e->>7, (e->>8)::uuid, e->>9, (e->>10)::jsonb, decode(e->>11, 'hex'),
                       decode(e->>12, 'hex'), decode(e->>13, 'hex')
                  FROM moved, jsonb_array_elements(chain->3) AS e;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'audit chain % has no head row to move', chain_id;
                END IF;
            END LOOP;
        END
        $$
        """
    )


def downgrade() -> None:
    raise NotImplementedError("tenantgate migrations are forward-only; restore from backup to go back")
