"""Transport security: HTTPS from `tenantgate serve`, no clear-text saas on the network, trusted
proxies only by name, loud warnings for unverified database/Redis links, security headers."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from tenantgate.api._headers import API_CSP, CONSOLE_CSP
from tenantgate.cli._serve import check_exposure
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.errors import ConfigurationError
from tests.conftest import MASTER_KEY, PEPPER, DatabaseFixture

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the address this file checks saas refuses

# --- the exposure rule and the warnings, as functions -------------------------------------------


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize("host", [ALL_INTERFACES, "192.0.2.10", "::", "example.internal"])
def test_saas_refuses_plain_http_on_a_network_address(host: str) -> None:
    with pytest.raises(ConfigurationError, match="plain HTTP"):
        check_exposure(_settings(mode=DeploymentMode.SAAS), host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.3.4.5"])
def test_saas_on_loopback_needs_no_tls(host: str) -> None:
    check_exposure(_settings(mode=DeploymentMode.SAAS), host)


def test_saas_on_the_network_with_tls_or_a_named_proxy(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    check_exposure(_settings(mode=DeploymentMode.SAAS, tls_cert=cert, tls_key=key), ALL_INTERFACES)
    check_exposure(_settings(mode=DeploymentMode.SAAS, trusted_proxies="10.0.0.5,10.1.0.0/16"), ALL_INTERFACES)
    check_exposure(_settings(mode=DeploymentMode.SELF_HOSTED), ALL_INTERFACES)  # one operator: its choice


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    with pytest.raises(ConfigurationError, match="go together"):
        _settings(tls_cert=cert).check()
    with pytest.raises(ValidationError, match=r"trusted_proxies: 'proxy\.example' is not a CIDR"):
        _settings(trusted_proxies="proxy.example")


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("postgresql://app@db.example:5432/tg", "sslmode=prefer"),
        ("postgresql://app@db.example:5432/tg?sslmode=require", "sslmode=require"),
        ("postgresql://app@db.example:5432/tg?sslmode=verify-ca", "sslmode=verify-ca"),
        ("postgresql://app@db.example:5432/tg?sslmode=verify-full&sslrootcert=/ca.pem", None),
        ("postgresql://app@127.0.0.1:5432/tg", None),
        ("postgresql://app@localhost/tg", None),
        ("postgresql://app@/tg?host=/var/run/postgresql", None),
    ],
)
def test_saas_warns_when_the_database_link_is_not_verified_tls(url: str, warned: str | None) -> None:
    warnings = _settings(mode=DeploymentMode.SAAS, database_url=url).transport_warnings()
    if warned is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warned in warnings[0]
        assert "verify-full" in warnings[0]


def test_redis_warning_and_self_hosted_silence() -> None:
    remote = _settings(mode=DeploymentMode.SAAS, redis_url="redis://cache.example:6379/0")
    assert any("rediss://" in w for w in remote.transport_warnings())
    assert _settings(mode=DeploymentMode.SAAS, redis_url="rediss://cache.example:6379/0").transport_warnings() == []
    assert _settings(mode=DeploymentMode.SAAS, redis_url="redis://127.0.0.1:6379/0").transport_warnings() == []
    lax = _settings(mode=DeploymentMode.SELF_HOSTED, database_url="postgresql://a@db.example/tg")
    assert lax.transport_warnings() == []


# --- security headers, in process -------------------------------------------------------------


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/healthz"), await client.get("/v1/whoami")):  # 200 and 401
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["content-security-policy"] == API_CSP.decode()
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS
    assert (await client.get("/v1/whoami")).status_code == 401


async def test_console_paths_get_the_strict_page_policy(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/does-not-exist")
    assert response.headers["content-security-policy"] == CONSOLE_CSP.decode()
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]


# --- the real server: HTTPS, and forwarded headers believed only from a named proxy ----------


def _self_signed(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenantgate test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(test_db: DatabaseFixture) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")}
    return {
        **clean,
        "TENANTGATE_MODE": "saas",
        "TENANTGATE_DATABASE_URL": test_db.urls.app,
        "TENANTGATE_ADMIN_DATABASE_URL": test_db.urls.admin,
        "TENANTGATE_OWNER_DATABASE_URL": test_db.urls.owner,
        "TENANTGATE_DB_ROLE_PREFIX": test_db.roles.owner.removesuffix("_owner"),
        "TENANTGATE_PEPPER": PEPPER,
        "TENANTGATE_MASTER_KEY": MASTER_KEY,
    }


@contextlib.contextmanager
def _serve(env: dict[str, str], *args: str) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenantgate", "serve", "--port", str(port), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"tenantgate serve did not come up:\n{out}\n{err}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_server(test_db: DatabaseFixture, tls_files: tuple[Path, Path]) -> Iterator[str]:
    cert, key = tls_files
    with _serve(_env(test_db), "--tls-cert", str(cert), "--tls-key", str(key)) as where:
        yield where


def test_serve_over_https_sends_hsts(https_server: str, tls_files: tuple[Path, Path]) -> None:
    trust = ssl.create_default_context(cafile=str(tls_files[0]))
    response = httpx.get(f"https://{https_server}/healthz", verify=trust)
    assert response.status_code == 200
    assert response.headers["strict-transport-security"].startswith("max-age=63072000")
    with pytest.raises(httpx.ConnectError):  # an unknown certificate is not trusted by default
        httpx.get(f"https://{https_server}/healthz")
    with pytest.raises(httpx.RemoteProtocolError):  # and there is no clear-text HTTP on that port
        httpx.get(f"http://{https_server}/healthz")


def test_forwarded_headers_are_believed_only_from_a_named_proxy(test_db: DatabaseFixture) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with _serve(_env(test_db)) as where:  # no proxy named: the header is a client's claim, ignored
        assert "strict-transport-security" not in httpx.get(f"http://{where}/healthz", headers=forwarded).headers
    with _serve(_env(test_db), "--trusted-proxy", "127.0.0.1") as where:  # the named proxy is believed
        assert "strict-transport-security" in httpx.get(f"http://{where}/healthz", headers=forwarded).headers


def test_serve_refuses_clear_text_saas_on_the_network(test_db: DatabaseFixture) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "tenantgate", "serve", "--host", ALL_INTERFACES, "--port", str(_free_port())],
        env=_env(test_db), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "will not serve 0.0.0.0 over plain HTTP" in refused.stderr


def test_serve_names_a_missing_certificate_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.pem"
    refused = subprocess.run(
        [sys.executable, "-m", "tenantgate", "serve", "--tls-cert", str(missing), "--tls-key", str(missing)],
        env={k: v for k, v in os.environ.items() if not k.startswith("TENANTGATE_")},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert f"--tls-cert: {missing} is not a readable file" in refused.stderr.replace("\n", "")
