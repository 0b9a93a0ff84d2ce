"""The S3 artifact backend: encryption on every write, presigned URLs S3 refuses, start-up checks, faults.

Against moto's S3 server on loopback, fronted by S3's presigned-URL checks (``tests.fakes.s3``);
real PostgreSQL and the real app. Round trips, revocation and deletion on both backends are in
``test_artifacts.py``; this module holds what only S3 has.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa

from tenantgate.artifacts import ArtifactStorageUnavailable, ArtifactStore, S3Storage, UrlSigner, tenant_prefix
from tenantgate.config import Settings
from tenantgate.errors import ConfigurationError, InvalidInput
from tenantgate.installation import Services, artifact_storage
from tenantgate.store import tables
from tests.artifact_backends import BUCKET, PREFIX, REGION, api_client, s3_client, s3_services, s3_settings, s3_world
from tests.conftest import TenantFixture
from tests.fakes.s3 import FakeS3


@pytest.fixture(scope="module")
def s3() -> Iterator[FakeS3]:
    with s3_world() as fake:
        yield fake


@pytest.fixture
async def on_s3(services: Services, s3: FakeS3) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    s3.clock_offset_s = 0
    s3.presigned_refusals.clear()
    svc = s3_services(services, s3)
    async with api_client(svc) as client:
        yield svc, client


async def upload(client: httpx.AsyncClient, tenant: TenantFixture, data: bytes) -> str:
    response = await client.post("/v1/artifacts", content=data, headers=tenant.headers())
    assert response.status_code == 201, response.text
    artifact_id: str = response.json()["id"]
    return artifact_id


async def storage_key(services: Services, tenant: TenantFixture, artifact_id: str) -> str:
    a = tables.artifacts
    async with services.db.tenant(tenant.system) as conn:
        key: str = (await conn.execute(sa.select(a.c.storage_key).where(a.c.id == uuid.UUID(artifact_id)))).scalar_one()
    return key


async def mint(client: httpx.AsyncClient, tenant: TenantFixture, artifact_id: str, **body: int) -> httpx.URL:
    response = await client.post(f"/v1/artifacts/{artifact_id}/url", json=body or None, headers=tenant.headers())
    assert response.status_code == 201, response.text
    return httpx.URL(response.json()["url"])


async def outside_get(url: httpx.URL | str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False) as outsider:
        return await outsider.get(url)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens here any more: connections are refused


# --- server-side encryption -----------------------------------------------------------------------


async def test_every_write_requests_server_side_encryption(
    on_s3: tuple[Services, httpx.AsyncClient], s3: FakeS3, tenant_a: TenantFixture
) -> None:
    services, client = on_s3
    artifact_id = await upload(client, tenant_a, b"encrypted at rest")
    key = await storage_key(services, tenant_a, artifact_id)
    head = s3_client(s3).head_object(Bucket=BUCKET, Key=PREFIX + key)
    assert head["ServerSideEncryption"] == "AES256"
    # The copy a revocation makes is encrypted as requested too, not left to the bucket's default.
    assert (await client.post(f"/v1/artifacts/{artifact_id}/revoke-urls", headers=tenant_a.headers())).is_success
    moved = await storage_key(services, tenant_a, artifact_id)
    assert moved != key
    assert s3_client(s3).head_object(Bucket=BUCKET, Key=PREFIX + moved)["ServerSideEncryption"] == "AES256"
    # Everything of tenant A sits under A's prefix, and only there.
    listed = s3_client(s3).list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}{tenant_a.id}/")
    assert [o["Key"] for o in listed["Contents"]] == [PREFIX + moved]


async def test_kms_encryption_names_the_configured_key(services: Services, s3: FakeS3, tenant_a: TenantFixture) -> None:
    kms_key = boto3.client("kms", region_name=REGION, endpoint_url=s3.url).create_key()["KeyMetadata"]["KeyId"]
    svc = s3_services(services, s3, artifact_s3_sse="aws:kms", artifact_s3_kms_key_id=kms_key)
    artifact = await svc.artifacts.create(tenant_a.system, b"kms sealed", kind="upload")
    key = await storage_key(svc, tenant_a, str(artifact.id))
    head = s3_client(s3).head_object(Bucket=BUCKET, Key=PREFIX + key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(kms_key)


# --- presigned URLs ---------------------------------------------------------------------------------


async def test_presigned_url_is_bound_to_object_expiry_and_response_headers(
    on_s3: tuple[Services, httpx.AsyncClient], s3: FakeS3, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    services, client = on_s3
    a_id = await upload(client, tenant_a, b"<!doctype html><p>a's page")
    b_id = await upload(client, tenant_b, b"b's content")
    url = await mint(client, tenant_a, a_id, ttl_s=120)
    assert url.params["X-Amz-Expires"] == "120"
    assert url.params["response-content-disposition"] == f'attachment; filename="{a_id}"'
    assert PREFIX + str(tenant_a.id) in url.path
    assert a_id not in url.path  # the key is opaque: the artifact id is not in it

    valid = await outside_get(url)
    assert valid.status_code == 200
    assert valid.content == b"<!doctype html><p>a's page"
    assert valid.headers["content-type"] == "text/html"
    assert valid.headers["content-disposition"].startswith("attachment")

    sig = url.params["X-Amz-Signature"]
    flipped = sig[:-4] + ("0000" if sig[-4:] != "0000" else "1111")
    b_key = await storage_key(services, tenant_b, b_id)
    refused = {
        "altered signature": url.copy_set_param("X-Amz-Signature", flipped),
        "extended expiry": url.copy_set_param("X-Amz-Expires", "604800"),
        "rendered inline": url.copy_set_param("response-content-disposition", "inline"),
        "other tenant's artifact": url.copy_with(path=f"/{BUCKET}/{PREFIX}{b_key}"),
    }  # fmt: skip
    for case, bad in refused.items():
        response = await outside_get(bad)
        assert response.status_code == 403, case
        assert b"a's page" not in response.content, case
        assert b"b's content" not in response.content, case
    assert s3.presigned_refusals == ["SignatureDoesNotMatch"] * len(refused)

    s3.clock_offset_s = 121  # two minutes later
    expired = await outside_get(url)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "Request has expired" in expired.text
    s3.clock_offset_s = 0
    assert (await outside_get(url)).status_code == 200

    # Tenant B cannot mint one for A's artifact; over the maximum lifetime nobody can.
    foreign = await client.post(f"/v1/artifacts/{a_id}/url", headers=tenant_b.headers())
    assert foreign.status_code == 404
    too_long = await client.post(f"/v1/artifacts/{a_id}/url", json={"ttl_s": 3601}, headers=tenant_a.headers())
    assert too_long.status_code == 422


# --- start-up ---------------------------------------------------------------------------------------


def test_s3_settings_are_checked_at_start_up(settings: Settings, s3: FakeS3) -> None:
    with pytest.raises(ConfigurationError, match="TENANTGATE_ARTIFACT_S3_BUCKET"):
        s3_settings(settings, s3, artifact_s3_bucket=None).check()
    with pytest.raises(ConfigurationError, match="KMS_KEY_ID"):
        s3_settings(settings, s3, artifact_s3_sse="aws:kms").check()
    with pytest.raises(ConfigurationError, match="KMS_KEY_ID"):
        s3_settings(settings, s3, artifact_s3_kms_key_id="alias/x").check()
    with pytest.raises(ValueError, match="artifact_s3_prefix"):
        Settings(_env_file=None, artifact_s3_prefix="../escape/")  # type: ignore[call-arg]
    s3_settings(settings, s3).check()  # complete: no complaint


def test_unreachable_bucket_refuses_to_start(settings: Settings, s3: FakeS3) -> None:
    with pytest.raises(ConfigurationError, match="'no-such-bucket' cannot be reached"):
        artifact_storage(s3_settings(settings, s3, artifact_s3_bucket="no-such-bucket"))
    down = s3_settings(settings, s3, artifact_s3_endpoint_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConfigurationError, match="cannot be reached"):
        artifact_storage(down.model_copy(update={"artifact_s3_timeout_s": 0.5}))
    with pytest.raises(ConfigurationError, match="ENDPOINT_URL"):
        artifact_storage(s3_settings(settings, s3, artifact_s3_endpoint_url="not a url"))
    assert isinstance(artifact_storage(s3_settings(settings, s3)), S3Storage)


def test_s3_backend_without_boto3_is_a_configuration_error(
    settings: Settings, s3: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    with pytest.raises(ConfigurationError, match=r"pip install 'tenantgate\[s3\]'"):
        artifact_storage(s3_settings(settings, s3))


# --- faults fail closed -----------------------------------------------------------------------------


async def test_storage_down_refuses_and_changes_nothing(
    on_s3: tuple[Services, httpx.AsyncClient], services: Services, s3: FakeS3, tenant_a: TenantFixture
) -> None:
    up, client = on_s3
    artifact_id = await upload(client, tenant_a, b"stored while up")
    key = await storage_key(up, tenant_a, artifact_id)
    storage = S3Storage(
        bucket=BUCKET, prefix=PREFIX, region=REGION, endpoint_url=f"http://127.0.0.1:{closed_port()}", timeout_s=0.5
    )
    store = ArtifactStore(
        db=services.db, audit=services.audit, storage=storage, signer=UrlSigner(b"k" * 32), limits=up.artifacts.limits
    )
    down = dataclasses.replace(up, artifacts=store)
    async with api_client(down) as broken:
        headers = tenant_a.headers()
        for method, path, body in (
            ("POST", "/v1/artifacts", b"new content"),
            ("GET", f"/v1/artifacts/{artifact_id}", None),
            ("POST", f"/v1/artifacts/{artifact_id}/revoke-urls", None),
            ("DELETE", f"/v1/artifacts/{artifact_id}", None),
        ):
            response = await broken.request(method, path, content=body, headers=headers)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["code"] == "artifact_storage_unavailable"
    # Nothing changed: one row, same key, generation 0, the bytes where they were.
    a = tables.artifacts
    async with services.db.tenant(tenant_a.system) as conn:
        rows = (await conn.execute(sa.select(a.c.id, a.c.storage_key, a.c.url_generation))).all()
    assert [(str(r.id), r.storage_key, r.url_generation) for r in rows] == [(artifact_id, key, 0)]
    assert s3_client(s3).get_object(Bucket=BUCKET, Key=PREFIX + key)["Body"].read() == b"stored while up"
    for action in ("artifact.urls_revoked", "artifact.deleted"):
        assert await services.audit.page(tenant_a.system, action=action) == []


class _OldKeyStuck(S3Storage):
    """S3 that will not delete an object it just copied from: a revocation caught between its two steps."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.copied_from: set[str] = set()

    def copy(self, source: str, target: str) -> None:
        super().copy(source, target)
        self.copied_from.add(source)

    def delete(self, key: str) -> None:
        if key in self.copied_from:
            raise ArtifactStorageUnavailable()
        super().delete(key)


async def test_a_revocation_cut_midway_is_undone(services: Services, s3: FakeS3, tenant_a: TenantFixture) -> None:
    up = s3_services(services, s3)
    artifact = await up.artifacts.create(tenant_a.system, b"must stay reachable", kind="upload")
    key = await storage_key(up, tenant_a, str(artifact.id))
    url = await up.artifacts.mint_url(tenant_a.system, artifact.id)
    storage = _OldKeyStuck(bucket=BUCKET, prefix=PREFIX, region=REGION, endpoint_url=s3.url)
    store = ArtifactStore(
        db=services.db, audit=services.audit, storage=storage, signer=UrlSigner(b"k" * 32), limits=up.artifacts.limits
    )
    with pytest.raises(ArtifactStorageUnavailable):
        await store.revoke_urls(tenant_a.system, artifact.id)
    # The row still names the old key at generation 0, the copy is gone, and nothing was audited.
    assert await storage_key(services, tenant_a, str(artifact.id)) == key
    listed = s3_client(s3).list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}{tenant_a.id}/")
    assert [o["Key"] for o in listed["Contents"]] == [PREFIX + key]
    assert await services.audit.page(tenant_a.system, action="artifact.urls_revoked") == []
    # The failure was reported, not hidden: the URL still works, and a retry on healthy storage revokes it.
    assert (await outside_get(url.path)).status_code == 200
    assert await up.artifacts.revoke_urls(tenant_a.system, artifact.id) == 1
    assert (await outside_get(url.path)).status_code in (403, 404)


# --- a tenant's prefix: what a purge lists and deletes --------------------------------------------


def test_a_tenant_prefix_is_listed_and_deleted_in_s3_and_nothing_else(settings: Settings, s3: FakeS3) -> None:
    storage = artifact_storage(s3_settings(settings, s3))
    a, b = uuid.uuid4(), uuid.uuid4()
    keys_a = sorted(f"{a}/{uuid.uuid4().hex}" for _ in range(1003))  # more than one listing page and batch
    key_b = f"{b}/{uuid.uuid4().hex}"
    for key in [*keys_a, key_b]:
        storage.put(key, b"x")
    assert sorted(storage.list_prefix(tenant_prefix(a))) == keys_a
    assert storage.delete_prefix(tenant_prefix(a)) == 1003
    assert list(storage.list_prefix(tenant_prefix(a))) == []
    assert storage.delete_prefix(tenant_prefix(a)) == 0  # idempotent
    assert list(storage.list_prefix(tenant_prefix(b))) == [key_b]
    for bad in ("", "../", str(a)):  # never the whole bucket, never a sibling tenant's keys
        with pytest.raises(InvalidInput):
            storage.delete_prefix(bad)
