"""Vault benchmark: seals and opens per second, against bare AES-256-GCM in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_vault.py           # full run
    .venv/bin/python benchmarks/bench_vault.py --quick   # short run, to check it works

Two tables:

1. **In process, one field** (no database): bare ``AESGCM.encrypt`` / ``decrypt`` of a
   64-byte secret with a fresh nonce (base), against ``seal_field`` / ``open_field`` with
   the versioned header, the associated data (tenant, credential, field) and base64, as
   ``Vault.seal`` / ``Vault.open`` do per field.
2. **Through the vault, with the database** (one task): ``Vault.seal`` and ``Vault.open``
   of a two-field secret, each in its own tenant transaction (the data key row is read
   every time; its unwrapped key comes from the process cache), and
   ``CredentialStore.use`` (open by name + the ``credential.used`` audit event in the same
   transaction), against an empty tenant transaction (base).

By default an embedded PostgreSQL is started in a temporary directory and removed at
exit; with ``TENANTGATE_BENCH_DATABASE_URL`` a fresh database and roles are provisioned.
See benchmarks/README.md.
"""

from __future__ import annotations

import base64
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import uvloop
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _db import BenchDatabase, bench_database, describe, new_tenant, running_services, settings_kwargs
from _harness import (
    BenchError,
    Case,
    Plan,
    Round,
    compare,
    discarded_logs,
    header,
    report,
    run_concurrently,
    start,
    sync_case,
    time_each,
)
from tenantgate.auth import system_context
from tenantgate.installation import Services
from tenantgate.vault._aead import associated_data, open_field, seal_field

SECRET = os.urandom(48).hex()[:64].encode()  # a 64-character API key


@dataclass(frozen=True)
class VaultPlan(Plan):
    crypto_ops: int  # per round and case, in process
    db_ops: int  # per round and case, with the database


FULL = VaultPlan(rounds=7, crypto_ops=20_000, db_ops=600, deadline_s=600)
QUICK = VaultPlan(rounds=3, crypto_ops=4_000, db_ops=150, deadline_s=240)


def crypto_cases(plan: VaultPlan) -> dict[str, Case]:
    key, key_id = AESGCM(AESGCM.generate_key(bit_length=256)), uuid.uuid4()
    tenant, credential = uuid.uuid4(), uuid.uuid4()
    nonce = os.urandom(12)
    bare = nonce + key.encrypt(nonce, SECRET, None)
    sealed = base64.b64encode(seal_field(key, key_id, SECRET, associated_data(tenant, credential, "api_key"))).decode()
    if open_field(key, key_id, base64.b64decode(sealed), associated_data(tenant, credential, "api_key")) != SECRET:
        raise BenchError("seal_field/open_field did not round-trip")

    def bare_encrypt(_: int) -> None:
        n = os.urandom(12)
        key.encrypt(n, SECRET, None)

    def bare_decrypt(_: int) -> None:
        key.decrypt(bare[:12], bare[12:], None)

    def seal(_: int) -> None:
        base64.b64encode(seal_field(key, key_id, SECRET, associated_data(tenant, credential, "api_key")))

    def open_(_: int) -> None:
        open_field(key, key_id, base64.b64decode(sealed), associated_data(tenant, credential, "api_key"))

    ops = {"bare AESGCM encrypt": bare_encrypt, "seal_field": seal, "bare AESGCM decrypt": bare_decrypt,
           "open_field": open_}  # fmt: skip
    return {
        name: sync_case(lambda op=op: Round.sequential(time_each(op, range(plan.crypto_ops))))
        for name, op in ops.items()
    }


async def db_cases(services: Services, plan: VaultPlan) -> dict[str, Case]:
    tenant = await new_tenant(services)
    ctx = system_context(tenant.tenant_id, mode=services.settings.mode, request_id="bench")
    secret = {"access_token": SECRET.decode(), "refresh_token": SECRET.decode()[::-1]}
    info = await services.credentials.create(ctx, name="bench", kind="oauth", secret=secret)
    async with services.db.tenant(ctx) as conn:
        sealed = dict(
            (
                await conn.execute(
                    sa.text("SELECT sealed FROM tenantgate.credentials WHERE tenant_id = :t AND id = :i"),
                    {"t": ctx.tenant_id, "i": info.id},
                )
            ).scalar_one()
        )
    vault = services.vault

    async def empty() -> None:
        async with services.db.tenant(ctx) as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def seal() -> None:
        async with services.db.tenant(ctx) as conn:
            await vault.seal(conn, ctx, info.id, secret)

    async def open_() -> None:
        async with services.db.tenant(ctx) as conn:
            if await vault.open(conn, ctx, info.id, sealed) != secret:
                raise BenchError("Vault.open returned the wrong secret")

    async def use() -> None:
        await services.credentials.use(ctx, "bench", tool="bench@v1", call_id=uuid.uuid4(), run_id=None)

    ops = {"empty tenant transaction": empty, "Vault.seal": seal, "Vault.open": open_, "CredentialStore.use": use}
    return {name: (lambda op=op: run_concurrently(op, plan.db_ops)) for name, op in ops.items()}


async def run_all(db: BenchDatabase, plan: VaultPlan, console: Console) -> None:
    crypto = await compare(crypto_cases(plan), plan.rounds)
    report(console, "One 64-byte field, in process (encrypt side)",
           {k: crypto[k] for k in ("bare AESGCM encrypt", "seal_field")}, baseline="bare AESGCM encrypt")  # fmt: skip
    report(console, "One 64-byte field, in process (decrypt side)",
           {k: crypto[k] for k in ("bare AESGCM decrypt", "open_field")}, baseline="bare AESGCM decrypt")  # fmt: skip
    async with running_services(settings_kwargs(db)) as services:
        results = await compare(await db_cases(services, plan), plan.rounds)
    report(console, f"A two-field secret through the vault, one task, {plan.db_ops} ops/round", results,
           baseline="empty tenant transaction")  # fmt: skip


def main() -> None:
    plan, quick, console = start(__doc__, FULL, QUICK)
    started = time.monotonic()
    with discarded_logs(), bench_database() as db:
        header(console, "tenantgate vault benchmark", plan, quick, describe(db))
        uvloop.run(run_all(db, plan, console))
    console.print(f"[dim]done in {time.monotonic() - started:.0f}s[/dim]")


if __name__ == "__main__":
    main()
