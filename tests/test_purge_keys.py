"""Crypto-shredding that survives backups: per-tenant KEKs from a secret kept outside the database.

And the storage side of a purge: everything under a tenant's prefix, rows or no rows.
"""

from __future__ import annotations

import base64
import os
import stat
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tenantgate.artifacts import LocalStorage, tenant_prefix
from tenantgate.errors import ConfigurationError, InvalidInput
from tenantgate.installation import Services
from tenantgate.vault import CredentialStore, CredentialUnreadable, LocalKeyFile, TenantSecrets, Vault, VaultTransit
from tests.conftest import TenantFixture
from tests.fake_transit import FakeTransit

MASTER = base64.b64encode(os.urandom(32)).decode()
DEK = os.urandom(32)


def context(tenant_id: uuid.UUID) -> dict[str, str]:
    return {"tenant_id": str(tenant_id), "data_key_id": str(uuid.uuid4())}


def test_each_tenant_gets_its_own_kek_and_destroying_its_secret_stops_every_copy(tmp_path: Path) -> None:
    secrets = TenantSecrets(tmp_path / "tenant-keys")
    provider = LocalKeyFile.from_master_key(MASTER, tenant_secrets=secrets)
    a, b = uuid.uuid4(), uuid.uuid4()
    ctx_a, ctx_b = context(a), context(b)
    kek_a, wrapped_a = provider.wrap(DEK, ctx_a)
    kek_b, wrapped_b = provider.wrap(DEK, ctx_b)
    assert kek_a == kek_b == provider.current_kek_id + ":t"
    path = tmp_path / "tenant-keys" / f"{a}.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tenant-keys").stat().st_mode) == 0o700
    # Another process of the installation (same master key, same key directory) opens it.
    other = LocalKeyFile.from_master_key(MASTER, tenant_secrets=TenantSecrets(tmp_path / "tenant-keys"))
    assert other.unwrap(kek_a, wrapped_a, ctx_a) == DEK
    # The master key alone (no tenant secret) does not; nor does B's context open A's key.
    with pytest.raises(CredentialUnreadable):
        LocalKeyFile.from_master_key(MASTER).unwrap(kek_a, wrapped_a, ctx_a)
    with pytest.raises(CredentialUnreadable):
        provider.unwrap(kek_a, wrapped_a, {**ctx_a, "tenant_id": str(b)})

    assert provider.destroy_tenant(str(a)) is True
    assert provider.destroy_tenant(str(a)) is False  # idempotent
    assert not path.exists()
    for p in (provider, other):  # a wrapped key kept anywhere (a backup) is now useless
        with pytest.raises(CredentialUnreadable):
            p.unwrap(kek_a, wrapped_a, ctx_a)
    assert provider.unwrap(kek_b, wrapped_b, ctx_b) == DEK  # B untouched


def test_keys_wrapped_before_the_upgrade_still_open_and_rewrap_into_the_tenant_kek(tmp_path: Path) -> None:
    tenant = uuid.uuid4()
    ctx = context(tenant)
    legacy = LocalKeyFile.from_master_key(MASTER)
    old_kek, old_wrapped = legacy.wrap(DEK, ctx)
    assert not old_kek.endswith(":t")
    upgraded = LocalKeyFile.from_master_key(MASTER, tenant_secrets=TenantSecrets(tmp_path))
    assert upgraded.unwrap(old_kek, old_wrapped, ctx) == DEK  # lazy: nothing breaks
    new_kek, new_wrapped = upgraded.wrap(upgraded.unwrap(old_kek, old_wrapped, ctx), ctx)  # what rotate-kek does
    assert new_kek.endswith(":t")
    assert upgraded.unwrap(new_kek, new_wrapped, ctx) == DEK


def test_a_damaged_or_foreign_tenant_secret_is_refused(tmp_path: Path) -> None:
    secrets = TenantSecrets(tmp_path)
    with pytest.raises(ValueError, match="badly formed"):
        secrets.get("../../etc/passwd")
    tenant = str(uuid.uuid4())
    (tmp_path / f"{tenant}.key").write_text("not base64 at all\n")
    with pytest.raises(ConfigurationError, match="damaged"):
        secrets.get(tenant)


async def test_rotate_kek_moves_existing_tenants_onto_their_own_kek(
    services: Services, tenant_a: TenantFixture, tmp_path: Path
) -> None:
    legacy = Vault(db=services.db, provider=LocalKeyFile.from_master_key(MASTER), audit=services.audit)
    store = CredentialStore(db=services.db, vault=legacy, audit=services.audit)
    await store.create(tenant_a.system, name="legacy", kind="api_key", secret={"api_key": "sk-legacy-" + "x" * 20})
    provider = LocalKeyFile.from_master_key(MASTER, tenant_secrets=TenantSecrets(tmp_path))
    upgraded = Vault(db=services.db, provider=provider, audit=services.audit)
    rotation = await upgraded.rotate_kek(lambda _: tenant_a.system, tenants=[tenant_a.id])
    assert rotation.data_keys == 1
    fresh = CredentialStore(
        db=services.db, vault=Vault(db=services.db, provider=provider, audit=services.audit), audit=services.audit
    )
    used = await fresh.use(tenant_a.system, "legacy", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
    assert dict(used.secret) == {"api_key": "sk-legacy-" + "x" * 20}
    async with services.db.admin() as conn:
        shredded = await upgraded.shred_tenant(conn, tenant_a.id)
    assert (shredded.data_keys, shredded.tenant_kek) == (1, True)
    with pytest.raises(CredentialUnreadable):
        await fresh.use(tenant_a.system, "legacy", tool="t@v1", call_id=uuid.uuid4(), run_id=None)


def test_storage_lists_and_deletes_everything_under_one_tenant_prefix(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "artifacts")
    a, b = uuid.uuid4(), uuid.uuid4()
    keys_a = [f"{a}/{uuid.uuid4().hex}" for _ in range(3)]
    key_b = f"{b}/{uuid.uuid4().hex}"
    for key in [*keys_a, key_b]:
        storage.put(key, b"bytes")
    (tmp_path / "artifacts" / str(a) / ".leftover.tmp").write_bytes(b"half a write")  # an interrupted upload
    assert sorted(storage.list_prefix(tenant_prefix(a)))[1:] == sorted(keys_a)
    assert storage.delete_prefix(tenant_prefix(a)) == 4
    assert list(storage.list_prefix(tenant_prefix(a))) == []
    assert not (tmp_path / "artifacts" / str(a)).exists()
    assert storage.delete_prefix(tenant_prefix(a)) == 0  # idempotent
    assert list(storage.list_prefix(tenant_prefix(b))) == [key_b]
    with pytest.raises(InvalidInput):
        storage.delete_prefix("../")
    with pytest.raises(InvalidInput):
        storage.delete_prefix(str(a))  # a prefix ends with the separator: never a sibling tenant's directory


async def test_transit_per_tenant_keys_are_deleted_in_vault_by_the_purge(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    fake = FakeTransit().start()
    try:
        provider = VaultTransit(addr=fake.url, token=fake.token, key="tenantgate", timeout_s=2, per_tenant=True)
        vault = Vault(db=services.db, provider=provider, audit=services.audit)
        store = CredentialStore(db=services.db, vault=vault, audit=services.audit)
        for tenant in (tenant_a, tenant_b):
            await store.create(tenant.system, name="google", kind="api_key", secret={"api_key": f"sk-{tenant.id}"})
        name_a, name_b = f"tenantgate-t-{tenant_a.id}", f"tenantgate-t-{tenant_b.id}"
        assert {name_a, name_b} <= set(fake.keys)
        async with services.db.admin() as conn:
            (kek_id, wrapped) = (
                await conn.execute(
                    sa.text("SELECT kek_id, wrapped_key FROM tenantgate.tenant_data_keys WHERE tenant_id = :t"),
                    {"t": tenant_a.id},
                )
            ).one()
        assert kek_id.startswith(f"transit:{name_a}:v")
        ctx = {"tenant_id": str(tenant_a.id)}
        async with services.db.admin() as conn:
            shredded = await vault.shred_tenant(conn, tenant_a.id)
        assert (shredded.data_keys, shredded.tenant_kek) == (1, True)
        assert name_a not in fake.keys
        assert name_b in fake.keys
        with pytest.raises(CredentialUnreadable):  # the wrapped key from a backup: Vault no longer has its key
            provider.unwrap(kek_id, bytes(wrapped), ctx)
        assert provider.destroy_tenant(str(tenant_a.id)) is False  # idempotent
        fresh = CredentialStore(
            db=services.db, vault=Vault(db=services.db, provider=provider, audit=services.audit), audit=services.audit
        )
        used = await fresh.use(tenant_b.system, "google", tool="t@v1", call_id=uuid.uuid4(), run_id=None)
        assert dict(used.secret) == {"api_key": f"sk-{tenant_b.id}"}
        shared = VaultTransit(addr=fake.url, token=fake.token, key="tenantgate", timeout_s=2)
        assert shared.destroy_tenant(str(tenant_b.id)) is False  # the shared key is never deleted for one tenant
    finally:
        fake.stop()
