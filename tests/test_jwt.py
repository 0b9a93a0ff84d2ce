"""Bearer JWTs end to end: ``GET /v1/whoami`` on a real app whose settings trust five issuers.

Every refusal is a 401 ``{"code": "unauthenticated", "message": ...}`` with ``WWW-Authenticate:
Bearer``; the message fragment each case expects pins the refusal to the reason under test, so a
case cannot pass because its token is broken in some other way.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import AllowedPrivateKeys, ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from tenantgate.api import create_app
from tenantgate.auth import JwtVerifier
from tenantgate.config import JwtIssuerConfig, JwtKeyConfig, Settings
from tenantgate.context import PrincipalKind, Role
from tenantgate.errors import ConfigurationError
from tenantgate.installation import Installation, Services
from tenantgate.tenants import TenantStatus
from tests.conftest import TenantFixture, new_tenant

AUDIENCE = "tenantgate-api"
RSA_ISS = "https://rsa.idp.test"  # RS256; kid rsa-1 inline pem, kid rsa-2 pem_file
EC_ISS = "https://ec.idp.test"  # ES256; kids ec-1 and ec-2 from a jwks_file
ED_ISS = "https://ed.idp.test"  # EdDSA; one inline jwk (kid ed-1); may only name tenant A
HS_ISS = "https://hs.idp.test"  # HS256 secret; tenant in "org", principal in "uid"
MIXED_ISS = "https://mixed.idp.test"  # RS256 + ES256: kid m-rsa (pem) and kid m-ec (jwk)
SUBJECT = "user-123"  # a principal in tenant A only
SUBJECT_B = "user-b"  # a principal in tenant B only
LEEWAY = 30  # JwtIssuerConfig's default leeway_seconds

# Refusal reasons, as fragments of tenantgate's own messages.
ALG_REFUSED = "is not allowed for this issuer"
BAD_TOKEN = "invalid bearer token"
EXPIRED = "has expired"
NOT_YET = "not valid yet"
UNKNOWN_ISSUER = "unknown issuer"
UNKNOWN_KID = "unknown key id"
NO_KID = "has no kid"
FOREIGN_KEY = "may not name their own keys"
NOT_A_TENANT = "is not a tenant id"
TENANT_NOT_ALLOWED = "may not issue tokens for that tenant"
NO_PRINCIPAL = "unknown or disabled principal"
KEY_FAMILY_MISMATCH = "does not match the key its kid names"

_DROP = object()  # a claim value meaning "leave this claim out"


# --- keys and tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa1: rsa.RSAPrivateKey
    rsa2: rsa.RSAPrivateKey
    ec1: ec.EllipticCurvePrivateKey
    ec2: ec.EllipticCurvePrivateKey
    ed: ed25519.Ed25519PrivateKey
    hs_secret: str

    @property
    def rsa1_public_pem(self) -> str:
        return public_pem(self.rsa1)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(issuer: str, tenant: uuid.UUID, /, **changes: object) -> dict[str, object]:
    """A valid claim set from ``issuer``; ``changes`` override claims, ``_DROP`` removes one."""
    now = int(time.time())
    payload: dict[str, object] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "tenant_id": str(tenant),
        "iat": now,
        "exp": now + 300,
    }
    for name, value in changes.items():
        if value is _DROP:
            del payload[name]
        else:
            payload[name] = value
    return payload


def sign(
    key: AllowedPrivateKeys | str,
    alg: str,
    payload: dict[str, object],
    *,
    kid: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    header = dict(headers or {})
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(payload, key, algorithm=alg, headers=header or None)


def raw_token(header: dict[str, Any], payload: dict[str, object], signer: Callable[[bytes], bytes] | None) -> str:
    """A compact JWS built by hand, for tokens PyJWT refuses to produce (alg none, HMAC over a PEM)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = signer(signing_input.encode("ascii")) if signer is not None else b""
    return f"{signing_input}.{b64url(signature)}"


def flip_bit(token: str) -> str:
    head, body, signature = token.split(".")
    raw = bytearray(b64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


def self_signed_der(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


# --- the app -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JwtEnv:
    client: httpx.AsyncClient
    services: Services
    keys: Keys
    tenant_a: TenantFixture
    tenant_b: TenantFixture
    user_a: uuid.UUID  # SUBJECT in tenant A, role member
    user_b: uuid.UUID  # SUBJECT_B in tenant B, roles admin + member

    def rs(
        self,
        *,
        tenant: uuid.UUID | None = None,
        key: rsa.RSAPrivateKey | None = None,
        alg: str = "RS256",
        kid: str | None = "rsa-1",
        headers: dict[str, Any] | None = None,
        **changes: object,
    ) -> str:
        """A token of the RSA issuer, valid for SUBJECT in tenant A unless told otherwise."""
        payload = claims(RSA_ISS, tenant or self.tenant_a.id, **changes)
        return sign(key or self.keys.rsa1, alg, payload, kid=kid, headers=headers)

    async def whoami(self, token: str) -> httpx.Response:
        return await self.client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa1=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa2=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec1=ec.generate_private_key(ec.SECP256R1()),
        ec2=ec.generate_private_key(ec.SECP256R1()),
        ed=ed25519.Ed25519PrivateKey.generate(),
        hs_secret=secrets.token_urlsafe(48),
    )


def issuers(keys: Keys, key_dir: Path, *, allowed_for_ed: uuid.UUID) -> tuple[JwtIssuerConfig, ...]:
    rsa2_pem = key_dir / "rsa-2.pem"
    rsa2_pem.write_text(public_pem(keys.rsa2), encoding="utf-8")
    jwks = key_dir / "ec.jwks.json"
    jwks.write_text(
        json.dumps(
            {
                "keys": [
                    {**ECAlgorithm.to_jwk(keys.ec1.public_key(), as_dict=True), "kid": "ec-1", "use": "sig"},
                    {**ECAlgorithm.to_jwk(keys.ec2.public_key(), as_dict=True), "kid": "ec-2", "use": "sig"},
                ]
            }
        ),
        encoding="utf-8",
    )
    ed_jwk = {**OKPAlgorithm.to_jwk(keys.ed.public_key(), as_dict=True), "kid": "ed-1"}
    ec1_jwk = {**ECAlgorithm.to_jwk(keys.ec1.public_key(), as_dict=True), "kid": "m-ec"}
    return (
        JwtIssuerConfig(
            issuer=RSA_ISS,
            audience=AUDIENCE,
            algorithms=("RS256",),
            keys=(JwtKeyConfig(kid="rsa-1", pem=keys.rsa1_public_pem), JwtKeyConfig(kid="rsa-2", pem_file=rsa2_pem)),
        ),
        JwtIssuerConfig(issuer=EC_ISS, audience=AUDIENCE, algorithms=("ES256",), keys=(JwtKeyConfig(jwks_file=jwks),)),
        JwtIssuerConfig(
            issuer=ED_ISS,
            audience=AUDIENCE,
            algorithms=("EdDSA",),
            keys=(JwtKeyConfig(jwk=ed_jwk),),
            tenants=frozenset({allowed_for_ed}),
        ),
        JwtIssuerConfig(
            issuer=HS_ISS,
            audience=AUDIENCE,
            algorithms=("HS256",),
            keys=(JwtKeyConfig(secret=keys.hs_secret),),
            tenant_claim="org",
            principal_claim="uid",
        ),
        JwtIssuerConfig(
            issuer=MIXED_ISS,
            audience=AUDIENCE,
            algorithms=("RS256", "ES256"),
            keys=(JwtKeyConfig(kid="m-rsa", pem=keys.rsa1_public_pem), JwtKeyConfig(kid="m-ec", jwk=ec1_jwk)),
        ),
    )


@pytest.fixture(scope="module")
async def jwt_env(
    installation: Installation,
    settings: Settings,
    services: Services,
    keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[JwtEnv]:
    tenant_a = await new_tenant(services, "jwt-a")
    tenant_b = await new_tenant(services, "jwt-b")
    user_a = await services.principals.create(
        tenant_a.system, name="a user", kind=PrincipalKind.USER, roles=frozenset({Role.MEMBER}), external_id=SUBJECT
    )
    user_b = await services.principals.create(
        tenant_b.system,
        name="b user",
        kind=PrincipalKind.USER,
        roles=frozenset({Role.ADMIN, Role.MEMBER}),
        external_id=SUBJECT_B,
    )
    trusted = issuers(keys, tmp_path_factory.mktemp("jwt-keys"), allowed_for_ed=tenant_a.id)
    jwt_settings = settings.model_copy(update={"jwt_issuers": trusted})
    jwt_services = Services.build(dataclasses.replace(installation, settings=jwt_settings))
    app = create_app(jwt_services, dispose_on_shutdown=True)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tenantgate.test") as client,
    ):
        yield JwtEnv(client, jwt_services, keys, tenant_a, tenant_b, user_a.id, user_b.id)


def assert_whoami(response: httpx.Response, tenant_id: uuid.UUID, principal_id: uuid.UUID, roles: list[str]) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {
        "tenant_id": str(tenant_id),
        "principal_id": str(principal_id),
        "kind": "user",
        "roles": roles,
    }


def assert_unauthenticated(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "unauthenticated"
    assert reason in body["message"].lower()


# --- accepted tokens ---------------------------------------------------------------------------


def _hs256(env: JwtEnv) -> str:
    # This issuer maps "org" to the tenant and "uid" to the principal; "sub" means nothing to it.
    payload = claims(HS_ISS, env.tenant_a.id, tenant_id=_DROP, org=str(env.tenant_a.id), uid=SUBJECT, sub="nobody")
    return sign(env.keys.hs_secret, "HS256", payload)


ACCEPTED: dict[str, Callable[[JwtEnv], str]] = {
    "RS256-pem": lambda env: env.rs(kid="rsa-1"),
    "RS256-pem_file": lambda env: env.rs(key=env.keys.rsa2, kid="rsa-2"),
    "ES256-jwks_file-ec-1": lambda env: sign(env.keys.ec1, "ES256", claims(EC_ISS, env.tenant_a.id), kid="ec-1"),
    "ES256-jwks_file-ec-2": lambda env: sign(env.keys.ec2, "ES256", claims(EC_ISS, env.tenant_a.id), kid="ec-2"),
    "EdDSA-jwk-kid": lambda env: sign(env.keys.ed, "EdDSA", claims(ED_ISS, env.tenant_a.id), kid="ed-1"),
    "EdDSA-jwk-single-key-no-kid": lambda env: sign(env.keys.ed, "EdDSA", claims(ED_ISS, env.tenant_a.id)),
    "HS256-secret-custom-claims": _hs256,
    "exp-just-past-within-leeway": lambda env: env.rs(exp=int(time.time()) - LEEWAY // 3),
    "nbf-just-ahead-within-leeway": lambda env: env.rs(nbf=int(time.time()) + LEEWAY // 3),
}


@pytest.mark.parametrize("make_token", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_valid_token_authenticates_its_principal(jwt_env: JwtEnv, make_token: Callable[[JwtEnv], str]) -> None:
    response = await jwt_env.whoami(make_token(jwt_env))
    assert_whoami(response, jwt_env.tenant_a.id, jwt_env.user_a, ["member"])


# --- refused tokens ----------------------------------------------------------------------------


def _alg_none(alg: str) -> Callable[[JwtEnv], str]:
    return lambda env: raw_token({"alg": alg, "typ": "JWT"}, claims(RSA_ISS, env.tenant_a.id), None)


def _hs256_over_rsa_public_pem(env: JwtEnv) -> str:
    # The classic confusion: the verifier's own public key, used as an HMAC secret. PyJWT will not sign it.
    secret = env.keys.rsa1_public_pem.encode("ascii")
    return raw_token(
        {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"},
        claims(RSA_ISS, env.tenant_a.id),
        lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest(),
    )


def _flipped_signature(env: JwtEnv) -> str:
    token = env.rs()
    flipped = flip_bit(token)
    assert flipped != token
    return flipped


REFUSED = [
    pytest.param(_alg_none("none"), ALG_REFUSED, id="alg-none"),
    pytest.param(_alg_none("None"), ALG_REFUSED, id="alg-None"),
    pytest.param(_alg_none("NONE"), ALG_REFUSED, id="alg-NONE"),
    pytest.param(_hs256_over_rsa_public_pem, ALG_REFUSED, id="alg-confusion-HS256-with-public-pem"),
    pytest.param(lambda env: env.rs(alg="RS512"), ALG_REFUSED, id="RS512-not-in-allowlist"),
    pytest.param(
        lambda env: sign(env.keys.ec1, "ES256", claims(RSA_ISS, env.tenant_a.id), kid="rsa-1"),
        ALG_REFUSED,
        id="ES256-to-an-RS256-issuer",
    ),
    pytest.param(lambda env: env.rs(kid="rsa-9"), UNKNOWN_KID, id="unknown-kid"),
    pytest.param(lambda env: env.rs(kid=None), NO_KID, id="no-kid-several-keys-rsa"),
    pytest.param(
        lambda env: sign(env.keys.ec1, "ES256", claims(EC_ISS, env.tenant_a.id)), NO_KID, id="no-kid-several-keys-ec"
    ),
    pytest.param(lambda env: env.rs(key=env.keys.rsa2, kid="rsa-1"), BAD_TOKEN, id="signed-by-another-kid"),
    pytest.param(_flipped_signature, BAD_TOKEN, id="signature-bit-flipped"),
    pytest.param(
        lambda env: env.rs(iat=int(time.time()) - 3600, exp=int(time.time()) - LEEWAY - 60), EXPIRED, id="expired"
    ),
    pytest.param(lambda env: env.rs(nbf=int(time.time()) + LEEWAY + 60), NOT_YET, id="nbf-in-future"),
    pytest.param(lambda env: env.rs(exp=_DROP), BAD_TOKEN, id="missing-exp"),
    pytest.param(lambda env: env.rs(aud=_DROP), BAD_TOKEN, id="missing-aud"),
    pytest.param(lambda env: env.rs(iss=_DROP), UNKNOWN_ISSUER, id="missing-iss"),
    pytest.param(lambda env: env.rs(aud="some-other-api"), BAD_TOKEN, id="wrong-aud"),
    pytest.param(lambda env: env.rs(iss="https://evil.idp.test"), UNKNOWN_ISSUER, id="unknown-iss"),
    pytest.param(lambda env: env.rs(tenant_id="acme"), NOT_A_TENANT, id="tenant-not-a-uuid"),
    pytest.param(lambda env: env.rs(tenant_id=_DROP), NOT_A_TENANT, id="tenant-claim-missing"),
    pytest.param(lambda env: env.rs(tenant=uuid.uuid4()), NO_PRINCIPAL, id="tenant-does-not-exist"),
    pytest.param(lambda env: env.rs(sub="nobody"), NO_PRINCIPAL, id="subject-without-principal"),
]


@pytest.mark.parametrize(("make_token", "reason"), REFUSED)
async def test_bad_token_is_refused(jwt_env: JwtEnv, make_token: Callable[[JwtEnv], str], reason: str) -> None:
    assert_unauthenticated(await jwt_env.whoami(make_token(jwt_env)), reason)


# --- headers that name keys --------------------------------------------------------------------


@dataclass(frozen=True)
class KeyServer:
    url: str
    requests: list[str]  # paths requested, in order


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    """A loopback HTTP server that would hand out keys, to prove nobody asks it for any."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = b'{"keys": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        # The server answers and counts, so "no requests" below means something.
        with httpx.Client(trust_env=False) as probe:
            assert probe.get(f"{url}/probe").status_code == 200
        assert requests == ["/probe"]
        requests.clear()
        yield KeyServer(url, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
async def test_token_naming_its_own_key_is_refused_and_nothing_is_fetched(
    jwt_env: JwtEnv, key_server: KeyServer, header: str
) -> None:
    values = {
        "jku": f"{key_server.url}/jwks.json",
        "x5u": f"{key_server.url}/cert.pem",
        "jwk": RSAAlgorithm.to_jwk(jwt_env.keys.rsa1.public_key(), as_dict=True),
        "x5c": [base64.b64encode(self_signed_der(jwt_env.keys.rsa1)).decode("ascii")],
    }
    # The same token without the header is accepted: the header alone is the reason for the 401.
    assert_whoami(await jwt_env.whoami(jwt_env.rs()), jwt_env.tenant_a.id, jwt_env.user_a, ["member"])
    response = await jwt_env.whoami(jwt_env.rs(headers={header: values[header]}))
    assert_unauthenticated(response, FOREIGN_KEY)
    assert key_server.requests == []


# --- tenants -----------------------------------------------------------------------------------


async def test_subject_of_tenant_a_cannot_claim_tenant_b(jwt_env: JwtEnv) -> None:
    # Tenant B is live and its own subject gets in; tenant A's subject naming tenant B does not.
    own = await jwt_env.whoami(jwt_env.rs(tenant=jwt_env.tenant_b.id, sub=SUBJECT_B))
    assert_whoami(own, jwt_env.tenant_b.id, jwt_env.user_b, ["admin", "member"])
    assert_whoami(await jwt_env.whoami(jwt_env.rs()), jwt_env.tenant_a.id, jwt_env.user_a, ["member"])
    assert_unauthenticated(await jwt_env.whoami(jwt_env.rs(tenant=jwt_env.tenant_b.id)), NO_PRINCIPAL)
    assert_unauthenticated(await jwt_env.whoami(jwt_env.rs(sub=SUBJECT_B)), NO_PRINCIPAL)


async def test_issuer_may_only_name_its_allowed_tenants(jwt_env: JwtEnv) -> None:
    b_claims = claims(ED_ISS, jwt_env.tenant_b.id, sub=SUBJECT_B)
    refused = await jwt_env.whoami(sign(jwt_env.keys.ed, "EdDSA", b_claims, kid="ed-1"))
    assert_unauthenticated(refused, TENANT_NOT_ALLOWED)
    # The same tenant and subject from an issuer without a tenant allowlist get in.
    allowed = await jwt_env.whoami(jwt_env.rs(tenant=jwt_env.tenant_b.id, sub=SUBJECT_B))
    assert_whoami(allowed, jwt_env.tenant_b.id, jwt_env.user_b, ["admin", "member"])


async def test_principal_of_a_suspended_tenant_is_refused(jwt_env: JwtEnv) -> None:
    services = jwt_env.services
    tenant = await new_tenant(services, "jwt-suspended")
    principal = await services.principals.create(
        tenant.system,
        name="soon suspended",
        kind=PrincipalKind.USER,
        roles=frozenset({Role.MEMBER}),
        external_id=SUBJECT,
    )
    token = jwt_env.rs(tenant=tenant.id)
    assert_whoami(await jwt_env.whoami(token), tenant.id, principal.id, ["member"])
    await services.tenants.set_status(tenant.id, TenantStatus.SUSPENDED)
    assert_unauthenticated(await jwt_env.whoami(token), NO_PRINCIPAL)


# --- configuration -----------------------------------------------------------------------------


def _issuer(algorithms: tuple[str, ...], key: JwtKeyConfig) -> JwtIssuerConfig:
    return JwtIssuerConfig(issuer="https://idp.test", audience=AUDIENCE, algorithms=algorithms, keys=(key,))


def test_private_jwk_is_refused_as_a_verification_key(keys: Keys) -> None:
    private_jwk = {**RSAAlgorithm.to_jwk(keys.rsa1, as_dict=True), "kid": "private"}
    with pytest.raises(ConfigurationError, match="private key"):
        JwtVerifier((_issuer(("RS256",), JwtKeyConfig(jwk=private_jwk)),))


def test_issuer_may_not_mix_hmac_and_public_key_algorithms() -> None:
    with pytest.raises(ValidationError, match="may not mix HS"):
        _issuer(("HS256", "RS256"), JwtKeyConfig(secret="s" * 64))


def test_short_hmac_secrets_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        JwtKeyConfig(secret="s" * 31)


@pytest.mark.parametrize("algorithms", [("none",), ("RS256", "none")], ids=["none", "RS256+none"])
def test_alg_none_cannot_be_configured(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError, match="unsupported JWT algorithms"):
        _issuer(algorithms, JwtKeyConfig(secret="s" * 64))


@pytest.mark.parametrize(
    ("algorithms", "key"),
    [
        pytest.param(("RS256",), lambda keys: JwtKeyConfig(secret="s" * 64), id="RS256-with-secret"),
        pytest.param(("HS256",), lambda keys: JwtKeyConfig(pem=keys.rsa1_public_pem), id="HS256-with-public-key"),
    ],
)
def test_verifier_refuses_keys_of_the_wrong_kind(
    keys: Keys, algorithms: tuple[str, ...], key: Callable[[Keys], JwtKeyConfig]
) -> None:
    with pytest.raises(ConfigurationError, match="HS\\* algorithms need secrets"):
        JwtVerifier((_issuer(algorithms, key(keys)),))


# --- an issuer with two key families --------------------------------------------------------


async def test_issuer_with_rsa_and_ec_keys_accepts_each_under_its_own_kid(jwt_env: JwtEnv) -> None:
    es = sign(jwt_env.keys.ec1, "ES256", claims(MIXED_ISS, jwt_env.tenant_a.id), kid="m-ec")
    rs = sign(jwt_env.keys.rsa1, "RS256", claims(MIXED_ISS, jwt_env.tenant_a.id), kid="m-rsa")
    for token in (es, rs):
        assert_whoami(await jwt_env.whoami(token), jwt_env.tenant_a.id, jwt_env.user_a, ["member"])


@pytest.mark.parametrize(("alg", "kid"), [("ES256", "m-rsa"), ("RS256", "m-ec")])
async def test_kid_of_another_key_family_is_refused_not_a_server_error(jwt_env: JwtEnv, alg: str, kid: str) -> None:
    # PyJWT raises TypeError for an RSA key under ES256 (and the reverse); that must be a 401, not a 500.
    key = jwt_env.keys.ec1 if alg == "ES256" else jwt_env.keys.rsa1
    token = sign(key, alg, claims(MIXED_ISS, jwt_env.tenant_a.id), kid=kid)
    assert_unauthenticated(await jwt_env.whoami(token), KEY_FAMILY_MISMATCH)
