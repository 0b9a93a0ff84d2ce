"""`tenantgate audit verify|export` as an operator runs them, against the test database."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest

from tenantgate.audit import PLATFORM_CHAIN, AuditEvent, AuditRecord
from tenantgate.auth import system_context
from tenantgate.context import TenantContext
from tenantgate.installation import Services
from tests.conftest import MASTER_KEY, PEPPER, DatabaseFixture
from tests.test_audit_chain import as_owner, spec_hash, tamper


@pytest.fixture(scope="module")
def env(test_db: DatabaseFixture) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    return {
        **clean,
        "TENANTGATE_DATABASE_URL": test_db.urls.app,
        "TENANTGATE_ADMIN_DATABASE_URL": test_db.urls.admin,
        "TENANTGATE_DB_ROLE_PREFIX": test_db.roles.owner.removesuffix("_owner"),
        "TENANTGATE_PEPPER": PEPPER,
        "TENANTGATE_MASTER_KEY": MASTER_KEY,
    }


def tg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenantgate", "audit", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


async def tenant_with_events(services: Services, n: int) -> tuple[TenantContext, list[AuditRecord]]:
    tenant = await services.tenants.create(f"audit-cli-{uuid.uuid4().hex[:10]}")
    ctx = system_context(tenant.id, mode=services.settings.mode, request_id="cli-test")
    records = [await services.audit.record(ctx, AuditEvent("tool.executed", payload={"i": i})) for i in range(n)]
    return ctx, records


async def test_verify_names_the_first_broken_seq_of_every_tampered_chain(
    services: Services, test_db: DatabaseFixture, env: dict[str, str]
) -> None:
    intact, _ = await tenant_with_events(services, 3)
    modified, _ = await tenant_with_events(services, 5)
    deleted, _ = await tenant_with_events(services, 5)
    reordered, _ = await tenant_with_events(services, 5)
    forged, records = await tenant_with_events(services, 5)
    tamper(test_db, modified, "UPDATE tenantgate.audit_events SET tool = 'rm' WHERE tenant_id = %s AND seq = 2")
    tamper(test_db, deleted, "DELETE FROM tenantgate.audit_events WHERE tenant_id = %s AND seq = 4")
    with as_owner(test_db, reordered.tenant_id) as conn:
        swap = "UPDATE tenantgate.audit_events SET seq = %s WHERE tenant_id = %s AND seq = %s"
        for new, old in ((100, 3), (3, 5), (5, 100)):
            conn.execute(swap, [new, reordered.tenant_id, old])
    fake = AuditRecord(
        tenant_id=forged.tenant_id, seq=6, occurred_at=records[-1].occurred_at + timedelta(seconds=1),
        action="key.revoked", decision=None, code=None, tool=None, principal_id=None, principal_kind=None,
        acting_for=None, request_id=None, payload={}, payload_digest=hashlib.sha256(b"{}").digest(),
        erased_at=None, prev_hash=records[-1].hash, hash=b"",
    )  # fmt: skip
    with as_owner(test_db, forged.tenant_id) as conn:  # appended past the head, perfectly linked
        conn.execute(
            "INSERT INTO tenantgate.audit_events (tenant_id, seq, occurred_at, action, payload, payload_digest,"
            " prev_hash, hash) VALUES (%s, 6, %s, 'key.revoked', '{}', %s, %s, %s)",
            [forged.tenant_id, fake.occurred_at, fake.payload_digest, fake.prev_hash, spec_hash(fake)],
        )

    one = tg(env, "verify", "--tenant", str(intact.tenant_id))
    assert one.returncode == 0, one.stderr
    assert "ok" in one.stdout

    everything = tg(env, "verify")
    assert everything.returncode == 1
    assert str(PLATFORM_CHAIN) in everything.stdout
    assert "(platform)" in everything.stdout
    for ctx, seq, why in (
        (modified, 2, "do not match its hash"),
        (deleted, 4, "event 4 is missing"),
        (reordered, 3, "prev_hash"),
        (forged, 6, "not covered by the chain head"),
    ):
        line = next(line for line in everything.stderr.splitlines() if str(ctx.tenant_id) in line)
        assert f"first broken event is seq {seq}: " in line
        assert why in line
    assert str(intact.tenant_id) not in everything.stderr

    single = tg(env, "verify", "--tenant", str(modified.tenant_id))
    assert single.returncode == 1
    assert "first broken event is seq 2" in single.stderr


async def test_export_writes_json_lines_without_erased_payloads(services: Services, env: dict[str, str]) -> None:
    ctx, records = await tenant_with_events(services, 4)
    await services.audit.erase_payload(ctx.tenant_id, 2)
    result = tg(env, "export", "--tenant", str(ctx.tenant_id))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert [line["payload"] for line in lines] == [{"i": 0}, None, {"i": 2}, {"i": 3}]
    assert lines[1]["erased_at"] is not None
    assert [line["hash"] for line in lines] == [r.hash.hex() for r in records]

    since = records[2].occurred_at.isoformat()
    later = tg(env, "export", "--tenant", str(ctx.tenant_id), "--since", since)
    assert [json.loads(line)["seq"] for line in later.stdout.splitlines()] == [3, 4]
    assert tg(env, "verify", "--tenant", str(ctx.tenant_id)).returncode == 0


def test_unknown_chains_and_bad_times_are_clear_errors(env: dict[str, str]) -> None:
    unknown = tg(env, "export", "--tenant", str(uuid.uuid4()))
    assert unknown.returncode == 2
    assert "not_found" in unknown.stderr
    assert tg(env, "verify", "--tenant", str(uuid.uuid4())).returncode == 2
    naive = tg(env, "export", "--tenant", str(PLATFORM_CHAIN), "--since", "2025-01-01T00:00:00")
    assert naive.returncode == 2
    assert "invalid_input" in naive.stderr
