"""The audit functions enter each chain's tenant with ``SET LOCAL`` (Citus replays it on its workers).

``audit_lock_heads`` and ``audit_write`` (0002) switched ``tenantgate.tenant_id`` per chain
with ``set_config(..., true)``, which Citus does not pass on to worker nodes; a ``SET LOCAL``
statement it does (``citus.propagate_set_commands = 'local'``). Only that line changes: the
same transaction-local setting, the value quoted with ``format('%L')``.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# The bodies as 0002 created them; {enter} is the statement that enters the chain's tenant.
_LOCK_HEADS = """
    CREATE OR REPLACE FUNCTION tenantgate.audit_lock_heads(p_chains jsonb)
    RETURNS TABLE (head_tenant uuid, head_seq bigint, head_hash bytea)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        chain uuid;
    BEGIN
        FOR chain IN SELECT c::uuid FROM jsonb_array_elements_text(p_chains) AS c LOOP
            {enter}
            -- Never wait: a head held elsewhere is left out, and written on its own later.
            RETURN QUERY
                SELECT h.tenant_id, h.seq, h.hash FROM tenantgate.audit_heads h
                 WHERE h.tenant_id = chain FOR UPDATE SKIP LOCKED;
        END LOOP;
    END
    $$
"""
_WRITE = """
    CREATE OR REPLACE FUNCTION tenantgate.audit_write(p_batch jsonb) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        chain jsonb;
        chain_id uuid;
    BEGIN
        FOR chain IN SELECT c FROM jsonb_array_elements(p_batch) AS c LOOP
            chain_id := (chain->>0)::uuid;
            {enter}
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


def _set_local(variable: str) -> str:
    return f"EXECUTE format('SET LOCAL tenantgate.tenant_id = %L', {variable}::text);"


def _set_config(variable: str) -> str:
    return f"PERFORM set_config('tenantgate.tenant_id', {variable}::text, true);"


def upgrade() -> None:
    op.execute(_LOCK_HEADS.replace("{enter}", _set_local("chain")))
    op.execute(_WRITE.replace("{enter}", _set_local("chain_id")))


def downgrade() -> None:
    op.execute(_LOCK_HEADS.replace("{enter}", _set_config("chain")))
    op.execute(_WRITE.replace("{enter}", _set_config("chain_id")))
