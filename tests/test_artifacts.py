"""Private artifacts: storage on disk, sniffing, the HTTP surface, signed URLs, quotas, and web_fetch.

Real PostgreSQL (row security decides what a tenant sees), real files under the suite's
artifact directory, the real app over ASGI. web_fetch runs against the loopback fake web.
Tests taking ``backend`` run twice: on the local directory and on S3 (moto's S3 server on
loopback, behind S3's presigned-URL checks; see ``tests.artifact_backends``).
"""

from __future__ import annotations

import stat
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from tenantgate.artifacts import (
    ArtifactLimits,
    ArtifactStore,
    ArtifactTooLarge,
    LocalStorage,
    UrlSigner,
    new_storage_key,
    sniff,
)
from tenantgate.errors import InvalidInput, QuotaExceeded
from tenantgate.gate import ComplianceMode
from tenantgate.installation import Services
from tenantgate.store import tables
from tenantgate.tenants import TenantStatus
from tenantgate.tools import Outcome
from tests.api_tools_world import World, api_world
from tests.artifact_backends import Backend, api_client, local_stored, s3_services, s3_stored, s3_world
from tests.conftest import PEPPER, TenantFixture
from tests.fakes import web
from tests.fakes.s3 import FakeS3

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(40))


async def upload(client: httpx.AsyncClient, tenant: TenantFixture, data: bytes, **params: str) -> dict[str, object]:
    response = await client.post("/v1/artifacts", content=data, params=params, headers=tenant.headers())
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def storage_key(services: Services, tenant: TenantFixture, artifact_id: uuid.UUID) -> str:
    async with services.db.tenant(tenant.system) as conn:
        key: str = (
            await conn.execute(sa.select(tables.artifacts.c.storage_key).where(tables.artifacts.c.id == artifact_id))
        ).scalar_one()
    return key


@pytest.fixture(scope="module")
def s3() -> Iterator[FakeS3]:
    with s3_world() as fake:
        yield fake


@pytest.fixture(params=["local", "s3"])
async def backend(
    request: pytest.FixtureRequest, services: Services, client: httpx.AsyncClient, artifacts_root: Path
) -> AsyncIterator[Backend]:
    if request.param == "local":
        yield Backend("local", services, client, local_stored(artifacts_root))
        return
    fake: FakeS3 = request.getfixturevalue("s3")
    on_s3 = s3_services(services, fake)
    async with api_client(on_s3) as s3_api:
        yield Backend("s3", on_s3, s3_api, s3_stored(fake))


# --- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00\x80\x00\x00", "image/gif"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "application/zip"),
        (b'  {"rows": [1, 2]}\n', "application/json"),
        (b"[1, 2", "text/plain"),  # looks like JSON, is not
        (b"\n<!DOCTYPE html><html><body>x</body></html>", "text/html"),
        (b"<html lang=en>", "text/html"),
        ("plain notes\nline two, caf\u00e9".encode(), "text/plain"),
        (b"", "text/plain"),
        (b"\x00\x01\x02binary", "application/octet-stream"),
        (b"\xc3\x28 invalid utf-8", "application/octet-stream"),
    ],
)
def test_sniff_reads_the_bytes(data: bytes, expected: str) -> None:
    assert sniff(data) == expected


def test_local_copy_is_private_and_leaves_the_source(tmp_path: Path) -> None:
    storage, tenant = LocalStorage(tmp_path / "artifacts"), uuid.uuid4()
    source, target = new_storage_key(tenant), new_storage_key(tenant)
    storage.put(source, PNG)
    storage.copy(source, target)
    assert b"".join(storage.chunks(target)) == b"".join(storage.chunks(source)) == PNG
    assert stat.S_IMODE((tmp_path / "artifacts" / target).stat().st_mode) == 0o600
    with pytest.raises(FileNotFoundError):
        storage.copy(new_storage_key(tenant), new_storage_key(tenant))
    with pytest.raises(InvalidInput):
        storage.copy(source, "../outside")


# --- upload and read over HTTP ------------------------------------------------------------------


async def test_upload_sniffs_type_stores_privately_and_streams_back(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, artifacts_root: Path
) -> None:
    response = await client.post(
        "/v1/artifacts", content=PNG, params={"kind": "image"},
        headers={**tenant_a.headers(), "Content-Type": "text/html"},  # a lie: the bytes decide
    )  # fmt: skip
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["content_type"] == "image/png"
    assert meta["kind"] == "image"
    assert meta["size_bytes"] == len(PNG)
    assert meta["created_by"] == str(tenant_a.owner_id)
    assert meta["retention_class"] == "standard"
    artifact_id = uuid.UUID(meta["id"])

    key = await storage_key(services, tenant_a, artifact_id)
    assert key.startswith(f"{tenant_a.id}/")
    assert str(artifact_id) not in key
    path = artifacts_root / key
    assert path.read_bytes() == PNG
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    read = await client.get(f"/v1/artifacts/{artifact_id}", headers=tenant_a.headers())
    assert read.status_code == 200
    assert read.content == PNG
    assert read.headers["content-type"] == "image/png"
    assert read.headers["x-content-type-options"] == "nosniff"
    assert read.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in read.headers["content-security-policy"]
    assert (await client.get(f"/v1/artifacts/{artifact_id}")).status_code == 401

    actions = [r.action for r in await services.audit.page(tenant_a.system, action="artifact.created")]
    assert actions == ["artifact.created"]
    reads = await services.audit.page(tenant_a.system, action="artifact.read")
    assert [r.payload for r in reads] == [{"artifact_id": str(artifact_id)}]


async def test_html_upload_is_served_as_a_download(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    page = b"<!doctype html><script>alert(document.cookie)</script>"
    meta = await upload(client, tenant_a, page)
    assert meta["content_type"] == "text/html"
    read = await client.get(f"/v1/artifacts/{meta['id']}", headers=tenant_a.headers())
    assert read.content == page
    assert read.headers["content-disposition"].startswith("attachment")
    assert read.headers["content-security-policy"].startswith("sandbox")


async def test_upload_rejects_bad_kind_and_retention(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    bad = await client.post("/v1/artifacts", content=b"x", params={"kind": "../x"}, headers=tenant_a.headers())
    assert bad.status_code == 422
    bad = await client.post(
        "/v1/artifacts", content=b"x", params={"retention_class": "forever"}, headers=tenant_a.headers()
    )
    assert bad.status_code == 422


async def test_other_tenant_cannot_read_or_link_an_artifact_over_http(
    client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    meta = await upload(client, tenant_a, b"tenant a secret notes")
    for method, path in (
        ("GET", f"/v1/artifacts/{meta['id']}"),
        ("GET", f"/v1/artifacts/{meta['id']}/meta"),
        ("POST", f"/v1/artifacts/{meta['id']}/url"),
    ):
        response = await client.request(method, path, headers=tenant_b.headers())
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "artifact_not_found"
        assert "tenant a" not in response.text
    # Another tenant's artifact and one that never existed are refused alike.
    missing = await client.get(f"/v1/artifacts/{uuid.uuid4()}", headers=tenant_b.headers())
    foreign = await client.get(f"/v1/artifacts/{meta['id']}", headers=tenant_b.headers())
    assert missing.status_code == foreign.status_code == 404
    assert (missing.json()["code"], missing.json()["message"]) == (foreign.json()["code"], foreign.json()["message"])


async def test_other_tenant_sees_no_artifact_rows_in_sql(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    meta = await upload(client, tenant_a, b"row of a")
    a = tables.artifacts
    async with services.db.tenant(tenant_b.system) as conn:
        # Even naming tenant A's id outright, row security returns nothing.
        rows = (await conn.execute(sa.select(a.c.id).where(a.c.tenant_id == tenant_a.id))).all()
        assert rows == []
        assert (await conn.execute(sa.select(a.c.id).where(a.c.id == uuid.UUID(str(meta["id"]))))).all() == []
    with pytest.raises(DBAPIError, match="row-level security"):
        async with services.db.tenant(tenant_b.system) as conn:
            await conn.execute(
                sa.insert(a).values(
                    tenant_id=tenant_a.id, id=uuid.uuid4(), kind="upload", content_type="text/plain", size_bytes=1,
                    sha256="0" * 64, storage_key=new_storage_key(tenant_a.id), created_by=tenant_b.owner_id,
                    created_by_kind="user", retention_class="standard", created_at=sa.func.now(),
                )
            )  # fmt: skip


# --- signed URLs ---------------------------------------------------------------------------------


async def test_signed_url_serves_without_an_api_key(backend: Backend, tenant_a: TenantFixture) -> None:
    meta = await upload(backend.client, tenant_a, b"%PDF-1.4 report")
    minted = await backend.client.post(f"/v1/artifacts/{meta['id']}/url", headers=tenant_a.headers())
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert set(body) == {"url", "expires_at"}  # one shape on both backends
    assert 290 <= body["expires_at"] - time.time() <= 300
    got = await backend.fetch(body["url"])
    assert got.status_code == 200
    assert got.content == b"%PDF-1.4 report"
    assert got.headers["content-type"] == "application/pdf"  # the stored, sniffed type, not the object's
    assert got.headers["content-disposition"] == f'attachment; filename="{meta["id"]}"'
    audit = backend.services.audit
    assert [r.payload for r in await audit.page(tenant_a.system, action="artifact.url_minted")] == [
        {"artifact_id": meta["id"], "expires_at": body["expires_at"]}
    ]
    if backend.name == "local":  # tenantgate serves local URLs itself, so it sees each use
        used = await audit.page(tenant_a.system, action="artifact.url_used")
        assert [r.payload for r in used] == [{"artifact_id": meta["id"]}]


async def test_upload_read_round_trip_on_each_backend(
    backend: Backend, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    meta = await upload(backend.client, tenant_a, PNG, kind="image")
    assert (meta["content_type"], meta["size_bytes"]) == ("image/png", len(PNG))
    artifact_id = uuid.UUID(str(meta["id"]))
    key = await storage_key(services, tenant_a, artifact_id)
    assert key.startswith(f"{tenant_a.id}/")
    assert backend.stored(key) == PNG
    read = await backend.client.get(f"/v1/artifacts/{artifact_id}", headers=tenant_a.headers())
    assert read.status_code == 200
    assert read.content == PNG
    assert read.headers["content-type"] == "image/png"
    assert (await backend.client.get(f"/v1/artifacts/{artifact_id}", headers=tenant_b.headers())).status_code == 404


async def test_revoked_urls_stop_and_new_ones_work(
    backend: Backend, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    client, headers = backend.client, tenant_a.headers()
    meta = await upload(client, tenant_a, b"quarterly numbers")
    other = await upload(client, tenant_a, b"another artifact of a")
    first = (await client.post(f"/v1/artifacts/{meta['id']}/url", headers=headers)).json()["url"]
    second = (await client.post(f"/v1/artifacts/{meta['id']}/url", json={"ttl_s": 3600}, headers=headers)).json()
    untouched = (await client.post(f"/v1/artifacts/{other['id']}/url", headers=headers)).json()["url"]
    assert (await backend.fetch(first)).content == b"quarterly numbers"
    key_before = await storage_key(services, tenant_a, uuid.UUID(str(meta["id"])))

    # Another tenant cannot revoke A's URLs, and learns nothing from trying.
    foreign = await client.post(f"/v1/artifacts/{meta['id']}/revoke-urls", headers=tenant_b.headers())
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "artifact_not_found"
    assert (await backend.fetch(first)).status_code == 200

    revoked = await client.post(f"/v1/artifacts/{meta['id']}/revoke-urls", headers=headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {"artifact_id": meta["id"], "url_generation": 1}
    for url in (first, second["url"]):  # replayed after revocation, even one with an hour left
        replay = await backend.fetch(url)
        assert replay.status_code in (403, 404), replay.text
        assert b"quarterly" not in replay.content
    fresh = (await client.post(f"/v1/artifacts/{meta['id']}/url", headers=headers)).json()["url"]
    assert (await backend.fetch(fresh)).content == b"quarterly numbers"
    assert (await backend.fetch(untouched)).content == b"another artifact of a"  # other artifacts keep theirs
    read = await client.get(f"/v1/artifacts/{meta['id']}", headers=headers)
    assert read.content == b"quarterly numbers"  # the artifact itself is untouched

    key_after = await storage_key(services, tenant_a, uuid.UUID(str(meta["id"])))
    if backend.name == "s3":  # presigned URLs cannot be recalled: the object moved to a new key
        assert key_after != key_before
        assert key_after.startswith(f"{tenant_a.id}/")
        assert backend.stored(key_before) is None
        assert backend.stored(key_after) == b"quarterly numbers"
    else:
        assert key_after == key_before
    trail = await backend.services.audit.page(tenant_a.system, action="artifact.urls_revoked")
    assert [r.payload for r in trail] == [
        {"artifact_id": meta["id"], "url_generation": 1, "rekeyed": backend.name == "s3"}
    ]
    assert await backend.services.audit.page(tenant_b.system, action="artifact.urls_revoked") == []


async def test_deleting_an_artifact_removes_its_bytes(
    backend: Backend, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    client = backend.client
    meta = await upload(client, tenant_a, b"to be deleted")
    key = await storage_key(services, tenant_a, uuid.UUID(str(meta["id"])))
    url = (await client.post(f"/v1/artifacts/{meta['id']}/url", headers=tenant_a.headers())).json()["url"]

    foreign = await client.delete(f"/v1/artifacts/{meta['id']}", headers=tenant_b.headers())
    assert foreign.status_code == 404
    assert backend.stored(key) == b"to be deleted"  # another tenant's delete changed nothing

    deleted = await client.delete(f"/v1/artifacts/{meta['id']}", headers=tenant_a.headers())
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["id"] == meta["id"]
    assert backend.stored(key) is None
    assert (await client.get(f"/v1/artifacts/{meta['id']}", headers=tenant_a.headers())).status_code == 404
    gone = await backend.fetch(url)
    assert gone.status_code in (403, 404)
    assert b"deleted" not in gone.content
    assert (await client.delete(f"/v1/artifacts/{meta['id']}", headers=tenant_a.headers())).status_code == 404
    trail = await backend.services.audit.page(tenant_a.system, action="artifact.deleted")
    assert [r.payload["artifact_id"] for r in trail] == [meta["id"]]


async def test_signed_url_lifetime_is_bounded(client: httpx.AsyncClient, tenant_a: TenantFixture) -> None:
    meta = await upload(client, tenant_a, b"x")
    short = await client.post(f"/v1/artifacts/{meta['id']}/url", json={"ttl_s": 60}, headers=tenant_a.headers())
    assert 55 <= short.json()["expires_at"] - time.time() <= 60
    long = await client.post(f"/v1/artifacts/{meta['id']}/url", json={"ttl_s": 3601}, headers=tenant_a.headers())
    assert long.status_code == 422
    assert long.json()["code"] == "invalid_input"


async def test_expired_altered_and_cross_tenant_urls_are_refused_alike(
    client: httpx.AsyncClient, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    a = await upload(client, tenant_a, b"a's content")
    b = await upload(client, tenant_b, b"b's content")
    url = httpx.URL((await client.post(f"/v1/artifacts/{a['id']}/url", headers=tenant_a.headers())).json()["url"])
    expires, sig = url.params["expires"], url.params["sig"]
    signer = UrlSigner(PEPPER.encode())  # the suite's server key: a URL minted the server's way, long expired
    expired = signer.mint(tenant_a.id, uuid.UUID(str(a["id"])), 300, now=time.time() - 301).path
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    refused = [
        expired,
        f"/v1/artifact-urls/{tenant_a.id}/{a['id']}?expires={expires}&sig={flipped}",  # altered signature
        f"/v1/artifact-urls/{tenant_a.id}/{a['id']}?expires={int(expires) + 3600}&sig={sig}",  # extended expiry
        f"/v1/artifact-urls/{tenant_a.id}/{b['id']}?expires={expires}&sig={sig}",  # another artifact
        f"/v1/artifact-urls/{tenant_b.id}/{b['id']}?expires={expires}&sig={sig}",  # other tenant's artifact
        f"/v1/artifact-urls/{tenant_b.id}/{a['id']}?expires={expires}&sig={sig}",  # other tenant
    ]
    bodies = []
    for path in refused:
        response = await client.get(path)
        assert response.status_code == 403, (path, response.text)
        assert b"content" not in response.content
        bodies.append({k: v for k, v in response.json().items() if k != "request_id"})
    assert bodies == [{"code": "artifact_url_invalid", "message": "This artifact link is not valid."}] * len(refused)
    # A URL signed with another key (another installation) is refused too.
    foreign = UrlSigner(b"another-installation-" + b"k" * 32).mint(tenant_a.id, uuid.UUID(str(a["id"])), 300).path
    assert (await client.get(foreign)).status_code == 403
    # The genuine URL still works.
    assert (await client.get(str(url))).content == b"a's content"


async def test_a_revoked_local_url_cannot_claim_the_new_generation(
    client: httpx.AsyncClient, tenant_a: TenantFixture
) -> None:
    meta = await upload(client, tenant_a, b"generation bound")
    url = (await client.post(f"/v1/artifacts/{meta['id']}/url", headers=tenant_a.headers())).json()["url"]
    assert "&gen=0&" in url
    assert (await client.post(f"/v1/artifacts/{meta['id']}/revoke-urls", headers=tenant_a.headers())).is_success
    # The generation is under the signature: bumping it in the URL does not revive the link.
    for replay in (url, url.replace("&gen=0&", "&gen=1&"), url.replace("&gen=0&", "&")):
        refused = await client.get(replay)
        assert refused.status_code == 403, replay
        assert refused.json()["code"] == "artifact_url_invalid"
    fresh = (await client.post(f"/v1/artifacts/{meta['id']}/url", headers=tenant_a.headers())).json()["url"]
    assert "&gen=1&" in fresh
    assert (await client.get(fresh)).content == b"generation bound"


async def test_signed_urls_stop_when_the_tenant_is_suspended(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    meta = await upload(client, tenant_a, b"kept")
    url = (await client.post(f"/v1/artifacts/{meta['id']}/url", headers=tenant_a.headers())).json()["url"]
    assert (await client.get(url)).status_code == 200
    await services.tenants.set_status(tenant_a.id, TenantStatus.SUSPENDED)
    refused = await client.get(url)
    assert refused.status_code == 403
    assert refused.json()["code"] == "artifact_url_invalid"


# --- size cap and quota ----------------------------------------------------------------------------


@pytest.fixture
def small_store(services: Services, tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(
        db=services.db, audit=services.audit, storage=LocalStorage(tmp_path / "artifacts"),
        signer=UrlSigner(b"s" * 32), limits=ArtifactLimits(max_bytes=100, tenant_quota_bytes=250),
    )  # fmt: skip


async def test_size_cap_and_tenant_quota(
    small_store: ArtifactStore, tenant_a: TenantFixture, tenant_b: TenantFixture, tmp_path: Path
) -> None:
    with pytest.raises(ArtifactTooLarge):
        await small_store.create(tenant_a.system, b"x" * 101, kind="upload")
    await small_store.create(tenant_a.system, b"x" * 100, kind="upload")
    await small_store.create(tenant_a.system, b"x" * 100, kind="upload")
    with pytest.raises(QuotaExceeded, match=r"200 of 250 bytes used") as refused:
        await small_store.create(tenant_a.system, b"x" * 51, kind="upload")
    assert refused.value.fields["used"] == 200
    await small_store.create(tenant_a.system, b"x" * 50, kind="upload")  # exactly at the quota
    await small_store.create(tenant_b.system, b"x" * 100, kind="upload")  # B's quota is its own
    files = [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    assert sorted(p.stat().st_size for p in files) == [50, 100, 100, 100]  # nothing left by refusals
    with pytest.raises(InvalidInput):
        await small_store.create(tenant_a.system, b"", kind="Web Page")


async def test_upload_over_the_cap_is_refused_over_http(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture
) -> None:
    cap = services.artifacts.limits.max_bytes
    response = await client.post("/v1/artifacts", content=b"\0" * (cap + 1), headers=tenant_a.headers())
    assert response.status_code == 413
    assert response.json()["code"] == "artifact_too_large"
    async with services.db.tenant(tenant_a.system) as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(tables.artifacts))).scalar_one()
    assert count == 0


# --- web_fetch keeps the raw page ---------------------------------------------------------------------


@pytest.fixture
async def world(services: Services) -> AsyncIterator[World]:
    async with api_world(services) as w:
        yield w


async def test_web_fetch_stores_the_raw_page_as_an_artifact(
    world: World, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    result = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/article")})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    artifact_id = uuid.UUID(result.output["artifact_id"])
    artifact, chunks = await services.artifacts.open(tenant_a.system, artifact_id)
    assert b"".join(chunks) == web.ARTICLE
    assert artifact.kind == "web_page"
    assert artifact.content_type == "text/html"
    assert artifact.sha256 == result.output["sha256"]
    assert artifact.created_by == tenant_a.system.principal_id
    created = await services.audit.page(tenant_a.system, action="artifact.created")
    assert [(r.tool, r.payload["artifact_id"]) for r in created] == [("web_fetch@v1", str(artifact_id))]
    with pytest.raises(Exception, match="No such artifact"):
        await services.artifacts.get(tenant_b.system, artifact_id)


async def test_web_fetch_keeps_no_raw_page_under_gdpr(
    world: World, services: Services, tenant_a: TenantFixture
) -> None:
    await services.policies.set_compliance(tenant_a.id, ComplianceMode.GDPR)
    result = await world.run(tenant_a.system, "web_fetch@v1", {"url": world.page("/notes.txt")})
    assert result.outcome is Outcome.SUCCEEDED, result.error
    assert result.output["artifact_id"] is None
    assert result.output["text"] == "plain notes\nline two"
    async with services.db.tenant(tenant_a.system) as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(tables.artifacts))).scalar_one()
    assert count == 0
