"""The vault's envelope encryption on the real database: every way a ciphertext can be wrong fails the same way.

Credentials are sealed through the public surface (``services.credentials`` / ``Vault``),
then opened after one thing was changed: another tenant, another credential id, another
field, a flipped bit, a truncation, another KEK, a destroyed key. Each is the one
``CredentialUnreadable``. Rotation keeps every credential readable, online; shredding
makes nothing open again.
"""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenantgate.config import Settings
from tenantgate.context import TenantContext
from tenantgate.errors import ConfigurationError, NotFound
from tenantgate.installation import Services
from tenantgate.vault import CredentialStore, CredentialUnreadable, LocalKeyFile, Vault
from tenantgate.vault._aead import associated_data, open_field, seal_field
from tests.conftest import MASTER_KEY, TenantFixture, new_tenant

SECRET = {"api_key": "sk-live-" + "Q" * 24}


async def open_as(
    vault: Vault, services: Services, ctx: TenantContext, cid: uuid.UUID, sealed: Mapping[str, str]
) -> dict[str, str]:
    async with services.db.tenant(ctx) as conn:
        return await vault.open(conn, ctx, cid, sealed)


async def sealed_row(services: Services, ctx: TenantContext, cid: uuid.UUID) -> dict[str, str]:
    async with services.db.tenant(ctx) as conn:
        row = (
            await conn.execute(
                sa.text("SELECT sealed FROM tenantgate.credentials WHERE tenant_id = :t AND id = :i"),
                {"t": ctx.tenant_id, "i": cid},
            )
        ).one()
    return dict(row.sealed)


async def stored(services: Services, tenant: TenantFixture, name: str = "openai") -> tuple[uuid.UUID, dict[str, str]]:
    info = await services.credentials.create(tenant.system, name=name, kind="api_key", secret=SECRET)
    return info.id, await sealed_row(services, tenant.system, info.id)


def flip(token_b64: str, index: int) -> str:
    raw = bytearray(base64.b64decode(token_b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


async def unreadable(coro: object) -> CredentialUnreadable:
    with pytest.raises(CredentialUnreadable) as caught:
        await coro  # type: ignore[misc]
    return caught.value


# --- the format --------------------------------------------------------------------------


def test_token_is_versioned_names_its_key_and_binds_its_place() -> None:
    key, key_id, tenant, cred = AESGCM.generate_key(bit_length=256), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    token = seal_field(AESGCM(key), key_id, b"secret", associated_data(tenant, cred, "api_key"))
    assert token[0] == 1
    assert token[1:17] == key_id.bytes
    assert len(token) == 1 + 16 + 12 + len(b"secret") + 16
    assert open_field(AESGCM(key), key_id, token, associated_data(tenant, cred, "api_key")) == b"secret"
    # Length-prefixed field names: ("ab", "c") and ("a", "bc") shapes cannot collide.
    assert associated_data(tenant, cred, "ab") != associated_data(tenant, cred, "a")


# --- one opaque error for every wrong ciphertext ------------------------------------------


async def test_round_trip_through_the_store(services: Services, tenant_a: TenantFixture) -> None:
    cid, sealed = await stored(services, tenant_a)
    assert await open_as(services.vault, services, tenant_a.system, cid, sealed) == SECRET
    assert SECRET["api_key"] not in str(sealed)


async def test_wrong_tenant_fails_to_open(services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture) -> None:
    cid, sealed = await stored(services, tenant_a)
    await stored(services, tenant_b)  # B has a data key of its own
    await unreadable(open_as(services.vault, services, tenant_b.system, cid, sealed))
    # Even with the right key in hand, the tenant id in the associated data must match.
    key, key_id = AESGCM(AESGCM.generate_key(bit_length=256)), uuid.uuid4()
    token = seal_field(key, key_id, b"x", associated_data(tenant_a.id, cid, "api_key"))
    with pytest.raises(CredentialUnreadable):
        open_field(key, key_id, token, associated_data(tenant_b.id, cid, "api_key"))


async def test_wrong_credential_id_or_field_fails_to_open(services: Services, tenant_a: TenantFixture) -> None:
    cid, sealed = await stored(services, tenant_a, "one")
    other, _ = await stored(services, tenant_a, "two")
    await unreadable(open_as(services.vault, services, tenant_a.system, other, sealed))
    await unreadable(open_as(services.vault, services, tenant_a.system, uuid.uuid4(), sealed))
    await unreadable(open_as(services.vault, services, tenant_a.system, cid, {"password": sealed["api_key"]}))


async def test_every_flipped_bit_region_and_truncation_fails_to_open(
    services: Services, tenant_a: TenantFixture
) -> None:
    cid, sealed = await stored(services, tenant_a)
    token = sealed["api_key"]
    length = len(base64.b64decode(token))
    # version byte, key id, nonce, ciphertext, tag
    for index in (0, 1, 16, 17, 28, 29, length - 17, length - 1):
        await unreadable(open_as(services.vault, services, tenant_a.system, cid, {"api_key": flip(token, index)}))
    raw = base64.b64decode(token)
    for cut in (0, 1, 17, 29, 45, length - 1):
        short = base64.b64encode(raw[:cut]).decode()
        await unreadable(open_as(services.vault, services, tenant_a.system, cid, {"api_key": short}))
    for junk in ("", "not base64!", base64.b64encode(b"\x02" + raw[1:]).decode()):
        await unreadable(open_as(services.vault, services, tenant_a.system, cid, {"api_key": junk}))
    await unreadable(open_as(services.vault, services, tenant_a.system, cid, {}))


async def test_wrong_kek_fails_to_open(services: Services, tenant_a: TenantFixture) -> None:
    cid, sealed = await stored(services, tenant_a)
    stranger = LocalKeyFile.from_master_key(base64.b64encode(os.urandom(32)).decode())
    fresh = Vault(db=services.db, provider=stranger, audit=services.audit)  # its own, empty key cache
    await unreadable(open_as(fresh, services, tenant_a.system, cid, sealed))
    # A wrapped data key that was tampered with fails the same way under the right KEK.
    async with services.db.tenant(tenant_a.system) as conn:
        await conn.execute(
            sa.text(
                "UPDATE tenantgate.tenant_data_keys SET wrapped_key = overlay(wrapped_key placing"
                " decode(lpad(to_hex(get_byte(wrapped_key, 20) # 1), 2, '0'), 'hex') from 21 for 1)"
                " WHERE tenant_id = :t"
            ),
            {"t": tenant_a.id},
        )
    right = Vault(db=services.db, provider=LocalKeyFile.from_master_key(MASTER_KEY), audit=services.audit)
    await unreadable(open_as(right, services, tenant_a.system, cid, sealed))


async def test_all_failures_are_the_same_error(services: Services, tenant_a: TenantFixture) -> None:
    cid, sealed = await stored(services, tenant_a)
    errors = [
        await unreadable(open_as(services.vault, services, tenant_a.system, uuid.uuid4(), sealed)),
        await unreadable(
            open_as(services.vault, services, tenant_a.system, cid, {"api_key": flip(sealed["api_key"], 40)})
        ),
        await unreadable(open_as(services.vault, services, tenant_a.system, cid, {"api_key": sealed["api_key"][:20]})),
    ]
    assert {(e.code, e.message, tuple(e.fields)) for e in errors} == {
        ("credential_unreadable", "The credential cannot be opened; store it again to replace it.", ())
    }


# --- rotation and shredding -----------------------------------------------------------------


async def use(
    services: Services, ctx: TenantContext, name: str, store: CredentialStore | None = None
) -> dict[str, str]:
    credential = await (store or services.credentials).use(
        ctx, name, tool="probe@v1", call_id=uuid.uuid4(), run_id=None
    )
    return dict(credential.secret)


async def test_rotate_dek_reseals_everything_online(services: Services) -> None:
    tenant = await new_tenant(services, "dek")
    secrets = {f"c{i}": {"api_key": f"key-{i}-{uuid.uuid4().hex}"} for i in range(12)}
    for name, secret in secrets.items():
        await services.credentials.create(tenant.system, name=name, kind="api_key", secret=secret)
    before = {c.name: c.data_key_id for c in await services.credentials.list(tenant.system)}
    assert len(set(before.values())) == 1

    async def readers() -> int:
        reads = 0
        for _ in range(4):
            for name, secret in secrets.items():
                assert await use(services, tenant.system, name) == secret
                reads += 1
        return reads

    (new_key, count), reads = await asyncio.gather(
        services.credentials.rotate_data_key(tenant.system, batch=3), readers()
    )
    assert (count, reads) == (12, 48)
    after = {c.name: c.data_key_id for c in await services.credentials.list(tenant.system)}
    assert set(after.values()) == {new_key} != set(before.values())
    for name, secret in secrets.items():
        assert await use(services, tenant.system, name) == secret
    async with services.db.tenant(tenant.system) as conn:
        states = dict(
            (
                await conn.execute(
                    sa.text("SELECT id, state FROM tenantgate.tenant_data_keys WHERE tenant_id = :t"), {"t": tenant.id}
                )
            ).all()
        )
    assert states == {new_key: "active", next(iter(before.values())): "destroyed"}
    actions = [r.action for r in await services.audit.page(tenant.system, limit=500)]
    assert "vault.dek_rotated" in actions
    assert "credential.resealed" in actions


async def test_rotate_kek_rewraps_every_data_key_online(services: Services, tmp_path: Path) -> None:
    provider = LocalKeyFile.open(tmp_path / "master.key")
    vault = Vault(db=services.db, provider=provider, audit=services.audit)
    store = CredentialStore(db=services.db, vault=vault, audit=services.audit)
    tenants = [await new_tenant(services, "kek") for _ in range(3)]
    for t in tenants:
        await store.create(t.system, name="svc", kind="basic_auth", secret={"username": "u", "password": f"p-{t.id}"})
    old_kek = provider.current_kek_id

    def context_for(tenant_id: uuid.UUID) -> TenantContext:
        return next(t.system for t in tenants if t.id == tenant_id)

    async def readers() -> None:
        for _ in range(5):
            for t in tenants:
                assert (await use(services, t.system, "svc", store))["password"] == f"p-{t.id}"

    result, _ = await asyncio.gather(vault.rotate_kek(context_for, tenants=[t.id for t in tenants]), readers())
    assert (result.tenants, result.data_keys) == (3, 3)
    assert result.kek_id != old_kek
    async with services.db.admin() as conn:
        keks = (
            (
                await conn.execute(
                    sa.text("SELECT DISTINCT kek_id FROM tenantgate.tenant_data_keys WHERE tenant_id = ANY(:ts)"),
                    {"ts": [t.id for t in tenants]},
                )
            )
            .scalars()
            .all()
        )
    assert keks == [result.kek_id]
    # Another process, cache cold, reading the rotated key file, opens every credential.
    cold = CredentialStore(
        db=services.db,
        vault=Vault(db=services.db, provider=LocalKeyFile.open(tmp_path / "master.key"), audit=services.audit),
        audit=services.audit,
    )
    for t in tenants:
        assert (await use(services, t.system, "svc", cold))["password"] == f"p-{t.id}"
    # The file kept the old KEK (it may still wrap keys in a process that has not re-read it) and is 0600.
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o600
    assert old_kek in (tmp_path / "master.key").read_text()


async def test_shredding_makes_nothing_open(services: Services) -> None:
    tenant = await new_tenant(services, "shred")
    ids = []
    for i in range(3):
        info = await services.credentials.create(
            tenant.system, name=f"k{i}", kind="api_key", secret={"api_key": f"v{i}"}
        )
        ids.append(info.id)
    assert await use(services, tenant.system, "k0") == {"api_key": "v0"}  # the data key is now cached
    async with services.db.tenant(tenant.system) as conn:
        assert await services.vault.shred(conn, tenant.system) == 1
    for i in range(3):
        with pytest.raises(CredentialUnreadable):
            await use(services, tenant.system, f"k{i}")
    cold = Vault(db=services.db, provider=LocalKeyFile.from_master_key(MASTER_KEY), audit=services.audit)
    for cid in ids:
        await unreadable(open_as(cold, services, tenant.system, cid, await sealed_row(services, tenant.system, cid)))
    async with services.db.tenant(tenant.system) as conn:
        left = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FROM tenantgate.tenant_data_keys WHERE tenant_id = :t AND wrapped_key IS NOT NULL"
                ),
                {"t": tenant.id},
            )
        ).scalar_one()
    assert left == 0


# --- the key file and the settings -------------------------------------------------------------


def test_key_file_is_created_private_and_refused_when_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.key"
    first = LocalKeyFile.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert LocalKeyFile.open(path).current_kek_id == first.current_kek_id  # read back, not regenerated
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        LocalKeyFile.open(path)


def test_external_database_with_local_provider_needs_the_master_key(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="TENANTGATE_MASTER_KEY is required"):
        settings.model_copy(update={"master_key": None}).check()
    with pytest.raises(ConfigurationError, match="base64 of 32"):
        Settings(_env_file=None, master_key="c2hvcnQ=").check()  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="VAULT_ADDR"):
        Settings(_env_file=None, key_provider="vault_transit").check()  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="KMS_KEY_ID"):
        Settings(_env_file=None, key_provider="aws_kms").check()  # type: ignore[call-arg]
    settings.check()  # the suite's own settings pass


# --- the store's edges ---------------------------------------------------------------------------


class Registry:
    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str) -> None:
        self.values.append(value)


async def test_known_value_sink_hears_every_opened_and_refreshed_secret(services: Services) -> None:
    tenant = await new_tenant(services, "known")
    known = Registry()
    store = CredentialStore(db=services.db, vault=services.vault, audit=services.audit, known=known)
    info = await store.create(
        tenant.system, name="g", kind="oauth",
        secret={"access_token": "a1", "refresh_token": "r1", "expires_at": "1764500000", "client_id": "app-123"},
    )  # fmt: skip
    assert known.values == []  # storing is not opening
    await use(services, tenant.system, "g", store)
    # An expiry time and a client id are stored with the secret but are not secrets: never redacted.
    assert sorted(known.values) == ["a1", "r1"]
    await store.store_refreshed(tenant.system, info.id, {"access_token": "a2", "refresh_token": "r1"}, tool="t@v1",
                                call_id=uuid.uuid4())  # fmt: skip
    assert "a2" in known.values
    assert await use(services, tenant.system, "g", store) == {"access_token": "a2", "refresh_token": "r1"}


async def test_concurrent_first_credentials_share_one_data_key(services: Services) -> None:
    tenant = await new_tenant(services, "race")
    await asyncio.gather(*(
        services.credentials.create(tenant.system, name=f"k{i}", kind="api_key", secret={"api_key": f"v{i}"})
        for i in range(8)
    ))  # fmt: skip
    assert len({c.data_key_id for c in await services.credentials.list(tenant.system)}) == 1
    for i in range(8):
        assert await use(services, tenant.system, f"k{i}") == {"api_key": f"v{i}"}


async def test_a_failed_use_is_audited_too(services: Services) -> None:
    tenant = await new_tenant(services, "fail")
    await services.credentials.create(tenant.system, name="k", kind="api_key", secret={"api_key": "v"})
    async with services.db.tenant(tenant.system) as conn:
        await services.vault.shred(conn, tenant.system)
    with pytest.raises(CredentialUnreadable):
        await use(services, tenant.system, "k")
    with pytest.raises(NotFound):
        await use(services, tenant.system, "missing")
    failed = await services.audit.page(tenant.system, action="credential.used", decision="failed")
    assert [(r.code, r.tool, r.payload and r.payload["name"]) for r in failed] == [
        ("credential_unreadable", "probe@v1", "k"),
        ("not_found", "probe@v1", "missing"),
    ]
