"""External key providers: Vault transit against a loopback fake of its API, AWS KMS against moto's server.

Both run on 127.0.0.1 only. Each provider seals and opens real credentials on the real
database; a provider that refuses or does not answer makes credential use fail closed
with ``key_provider_unavailable``; a wrapped key that does not fit is the one opaque error.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from tenantgate.context import TenantContext
from tenantgate.installation import Services
from tenantgate.vault import (
    AwsKms,
    CredentialStore,
    CredentialUnreadable,
    KeyProvider,
    KeyProviderUnavailable,
    Vault,
    VaultTransit,
)
from tests.conftest import TenantFixture
from tests.fake_transit import FakeTransit

SECRET = {"access_token": "ya29.token-" + "z" * 30, "refresh_token": "1//refresh-" + "r" * 30}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens here any more: connections are refused


def store_for(services: Services, provider: KeyProvider) -> CredentialStore:
    vault = Vault(db=services.db, provider=provider, audit=services.audit)
    return CredentialStore(db=services.db, vault=vault, audit=services.audit)


async def use(store: CredentialStore, ctx: TenantContext, name: str = "google") -> dict[str, str]:
    credential = await store.use(ctx, name, tool="probe@v1", call_id=uuid.uuid4(), run_id=None)
    return dict(credential.secret)


async def key_rows(services: Services, tenant_id: uuid.UUID) -> list[Any]:
    async with services.db.admin() as conn:
        return list(
            (
                await conn.execute(
                    sa.text(
                        "SELECT id, provider, kek_id, wrapped_key FROM tenantgate.tenant_data_keys WHERE tenant_id = :t"
                    ),
                    {"t": tenant_id},
                )
            ).all()
        )


# --- HashiCorp Vault transit ------------------------------------------------------------------


@pytest.fixture(scope="module")
def transit() -> Iterator[FakeTransit]:
    fake = FakeTransit().start()
    yield fake
    fake.stop()


def transit_provider(fake: FakeTransit, *, token: str | None = None, url: str | None = None) -> VaultTransit:
    return VaultTransit(addr=url or fake.url, token=token or fake.token, key="tenantgate", timeout_s=2)


async def test_transit_wraps_data_keys_and_never_sees_a_credential(
    services: Services, transit: FakeTransit, tenant_a: TenantFixture
) -> None:
    store = store_for(services, transit_provider(transit))
    await store.create(tenant_a.system, name="google", kind="oauth", secret=SECRET)
    assert await use(store, tenant_a.system) == SECRET
    ((_, provider, kek_id, wrapped),) = await key_rows(services, tenant_a.id)
    assert (provider, kek_id) == ("vault_transit", f"transit:tenantgate:v{len(transit.keys['tenantgate'])}")
    assert bytes(wrapped).startswith(b"vault:v")
    assert ("POST", "/v1/transit/encrypt/tenantgate") in transit.requests
    sent = b"".join(transit.bodies)
    assert all(value.encode() not in sent for value in SECRET.values())
    # A cold process (empty key cache) unwraps through transit/decrypt.
    assert await use(store_for(services, transit_provider(transit)), tenant_a.system) == SECRET
    assert ("POST", "/v1/transit/decrypt/tenantgate") in transit.requests


async def test_transit_rotation_rewraps_under_the_new_key_version(
    services: Services, transit: FakeTransit, tenant_a: TenantFixture
) -> None:
    provider = transit_provider(transit)
    store = store_for(services, provider)
    await store.create(tenant_a.system, name="google", kind="oauth", secret=SECRET)
    before = (await key_rows(services, tenant_a.id))[0].kek_id
    result = await store.vault.rotate_kek(lambda _: tenant_a.system, tenants=[tenant_a.id])
    after = (await key_rows(services, tenant_a.id))[0].kek_id
    assert ("POST", "/v1/transit/keys/tenantgate/rotate") in transit.requests
    assert result.data_keys == 1
    assert int(after.rsplit(":v", 1)[1]) == int(before.rsplit(":v", 1)[1]) + 1
    assert await use(store_for(services, transit_provider(transit)), tenant_a.system) == SECRET


async def test_transit_bad_token_or_no_server_fails_closed(
    services: Services, transit: FakeTransit, tenant_a: TenantFixture
) -> None:
    refused = store_for(services, transit_provider(transit, token="hvs.wrong"))
    with pytest.raises(KeyProviderUnavailable, match="Vault transit"):
        await refused.create(tenant_a.system, name="google", kind="oauth", secret=SECRET)
    assert await refused.list(tenant_a.system) == []  # nothing stored, nothing in plaintext

    await store_for(services, transit_provider(transit)).create(
        tenant_a.system, name="google", kind="oauth", secret=SECRET
    )
    down = store_for(services, transit_provider(transit, url=f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(KeyProviderUnavailable) as caught:
        await use(down, tenant_a.system)
    assert caught.value.code == "key_provider_unavailable"
    with pytest.raises(KeyProviderUnavailable):
        await use(store_for(services, transit_provider(transit, token="hvs.wrong")), tenant_a.system)


async def test_transit_tampered_wrapped_key_is_unreadable(
    services: Services, transit: FakeTransit, tenant_a: TenantFixture
) -> None:
    await store_for(services, transit_provider(transit)).create(
        tenant_a.system, name="google", kind="oauth", secret=SECRET
    )
    ((_, _, _, wrapped),) = await key_rows(services, tenant_a.id)
    prefix, body = bytes(wrapped).decode().rsplit(":", 1)
    tampered = f"{prefix}:{'B' if body[0] == 'A' else 'A'}{body[1:]}"  # one flipped ciphertext character
    async with services.db.admin() as conn:
        await conn.execute(
            sa.text("UPDATE tenantgate.tenant_data_keys SET wrapped_key = :w WHERE tenant_id = :t"),
            {"w": tampered.encode(), "t": tenant_a.id},
        )
    with pytest.raises(CredentialUnreadable):
        await use(store_for(services, transit_provider(transit)), tenant_a.system)


# --- AWS KMS (moto's server) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[tuple[str, str]]:
    with pytest.MonkeyPatch.context() as mp:
        # Dummy credentials in the environment: botocore never goes looking for real ones
        # (no instance metadata service, no config files).
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }.items():  # fmt: skip
            mp.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        key = boto3.client("kms", region_name="eu-central-1", endpoint_url=url).create_key(
            Description="tenantgate test KEK"
        )
        yield url, key["KeyMetadata"]["KeyId"]
        server.stop()


def kms_provider(endpoint: tuple[str, str], *, url: str | None = None) -> AwsKms:
    return AwsKms(key_id=endpoint[1], region="eu-central-1", endpoint_url=url or endpoint[0], timeout_s=2)


async def test_kms_wraps_with_the_tenant_as_encryption_context(
    services: Services, kms_endpoint: tuple[str, str], tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    store = store_for(services, kms_provider(kms_endpoint))
    for tenant in (tenant_a, tenant_b):
        await store.create(tenant.system, name="google", kind="oauth", secret=SECRET)
    assert await use(store_for(services, kms_provider(kms_endpoint)), tenant_a.system) == SECRET
    ((_, provider, kek_id, a_wrapped),) = await key_rows(services, tenant_a.id)
    assert provider == "aws_kms"
    assert kek_id.startswith("arn:aws:kms:eu-central-1:")
    assert kek_id.endswith(kms_endpoint[1])
    # Tenant A's wrapped data key copied into tenant B's row: KMS refuses it (another context).
    async with services.db.admin() as conn:
        await conn.execute(
            sa.text("UPDATE tenantgate.tenant_data_keys SET wrapped_key = :w WHERE tenant_id = :t"),
            {"w": bytes(a_wrapped), "t": tenant_b.id},
        )
    with pytest.raises(CredentialUnreadable):
        await use(store_for(services, kms_provider(kms_endpoint)), tenant_b.system)


async def test_kms_rotation_keeps_credentials_readable(
    services: Services, kms_endpoint: tuple[str, str], tenant_a: TenantFixture
) -> None:
    store = store_for(services, kms_provider(kms_endpoint))
    await store.create(tenant_a.system, name="google", kind="oauth", secret=SECRET)
    before = bytes((await key_rows(services, tenant_a.id))[0].wrapped_key)
    result = await store.vault.rotate_kek(lambda _: tenant_a.system, tenants=[tenant_a.id])
    assert result.data_keys == 1
    assert bytes((await key_rows(services, tenant_a.id))[0].wrapped_key) != before
    assert await use(store_for(services, kms_provider(kms_endpoint)), tenant_a.system) == SECRET


async def test_kms_unreachable_fails_closed(
    services: Services, kms_endpoint: tuple[str, str], tenant_a: TenantFixture
) -> None:
    await store_for(services, kms_provider(kms_endpoint)).create(
        tenant_a.system, name="google", kind="oauth", secret=SECRET
    )
    down = store_for(services, kms_provider(kms_endpoint, url=f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(KeyProviderUnavailable, match="AWS KMS"):
        await use(down, tenant_a.system)
    with pytest.raises(KeyProviderUnavailable):
        await down.create(tenant_a.system, name="other", kind="api_key", secret={"api_key": "x"})
