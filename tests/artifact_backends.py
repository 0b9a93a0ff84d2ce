"""The artifact service on each storage backend, behind the real app, for tests that run on both.

``s3_world()`` starts moto's S3 server behind the presigned-URL front (``tests.fakes.s3``) with
dummy AWS credentials in the environment (botocore never looks for real ones) and one bucket.
``s3_services(services, s3)`` is the suite's services with the artifact service built the way
the installation builds it for ``TENANTGATE_ARTIFACT_BACKEND=s3``. A :class:`Backend` is what a
test needs of either: an API client, the services, what storage holds under a key, and a way
to follow a signed URL as an outsider (no API key).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tenantgate.api import create_app
from tenantgate.config import Settings
from tenantgate.installation import Services, artifact_store
from tests.conftest import PEPPER
from tests.fakes.s3 import ACCESS_KEY, SECRET_KEY, FakeS3, fake_s3

__all__ = [
    "BUCKET", "PREFIX", "REGION", "Backend", "api_client", "local_stored", "s3_client", "s3_services", "s3_settings",
    "s3_stored", "s3_world",
]  # fmt: skip

BUCKET = "tenantgate-artifacts"
PREFIX = "tg/"
REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}  # fmt: skip


@contextmanager
def s3_world() -> Iterator[FakeS3]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        with fake_s3() as fake:
            s3_client(fake).create_bucket(Bucket=BUCKET)
            yield fake


def s3_client(fake: FakeS3) -> Any:
    return boto3.client("s3", region_name=REGION, endpoint_url=fake.url)


def s3_settings(settings: Settings, fake: FakeS3, **overrides: Any) -> Settings:
    update = {
        "artifact_backend": "s3", "artifact_s3_bucket": BUCKET, "artifact_s3_prefix": PREFIX,
        "artifact_s3_endpoint_url": fake.url, "artifact_s3_region": REGION, **overrides,
    }  # fmt: skip
    return settings.model_copy(update=update)


def s3_services(services: Services, fake: FakeS3, **overrides: Any) -> Services:
    settings = s3_settings(services.settings, fake, **overrides)
    settings.check()
    store = artifact_store(settings, db=services.db, audit=services.audit, pepper=PEPPER.encode())
    return dataclasses.replace(services, settings=settings, artifacts=store)


@asynccontextmanager
async def api_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The real app over ASGI around ``services`` (already started by the session fixture)."""

    async def settle(response: httpx.Response) -> None:
        await services.audit.drain()  # as the suite's client does: access events land before asserts

    transport = httpx.ASGITransport(app=create_app(services, dispose_on_shutdown=False))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://tenantgate.test", event_hooks={"response": [settle]}
    ) as client:
        yield client


@dataclass
class Backend:
    name: str
    services: Services
    client: httpx.AsyncClient
    stored: Callable[[str], bytes | None]  # the bytes storage holds under a storage key, or None

    async def fetch(self, url: str) -> httpx.Response:
        """Follow a signed URL without an API key: a path on the API, or an absolute presigned URL."""
        if url.startswith(("http://", "https://")):
            async with httpx.AsyncClient(trust_env=False) as outsider:
                return await outsider.get(url)
        return await self.client.get(url)


def local_stored(root: Path) -> Callable[[str], bytes | None]:
    def stored(key: str) -> bytes | None:
        path = root / key
        return path.read_bytes() if path.exists() else None

    return stored


def s3_stored(fake: FakeS3) -> Callable[[str], bytes | None]:
    client = s3_client(fake)

    def stored(key: str) -> bytes | None:
        try:
            body: bytes = client.get_object(Bucket=BUCKET, Key=PREFIX + key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
        return body

    return stored
