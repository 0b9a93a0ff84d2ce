"""JWT verification with PyJWT: per-issuer algorithm allowlists and keys, required exp/iss/aud.

Keys come only from configuration (inline PEM/JWK, PEM or JWKS files). Header fields that
point at other keys (``jku``, ``x5u``, ``jwk``, ``x5c``) are refused, never followed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tenantgate.config import JwtIssuerConfig, JwtKeyConfig
from tenantgate.errors import ConfigurationError, Unauthenticated

__all__ = ["JwtVerifier", "VerifiedToken"]

_FOREIGN_KEY_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c"})


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    issuer: JwtIssuerConfig
    tenant_id: uuid.UUID
    subject: str
    token_id: str | None


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    key: Any  # a cryptography public key, or bytes for HMAC


_PRIVATE_KEY_TYPES = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


def _load_keys(spec: JwtKeyConfig) -> list[_Key]:
    keys = _read_keys(spec)
    if any(isinstance(k.key, _PRIVATE_KEY_TYPES) for k in keys):
        # A verifier needs only the public half; a private key here is a leak waiting to happen.
        raise ConfigurationError("a JWT verification key is a private key: configure its public key instead")
    return keys


def _read_keys(spec: JwtKeyConfig) -> list[_Key]:
    try:
        if spec.secret is not None:
            return [_Key(spec.kid, spec.secret.get_secret_value().encode("utf-8"))]
        if spec.pem is not None or spec.pem_file is not None:
            pem = spec.pem if spec.pem is not None else spec.pem_file.read_text(encoding="utf-8")  # type: ignore[union-attr]
            return [_Key(spec.kid, serialization.load_pem_public_key(pem.encode("ascii")))]
        if spec.jwk is not None:
            jwk = jwt.PyJWK(spec.jwk)
            return [_Key(spec.kid or jwk.key_id, jwk.key)]
        assert spec.jwks_file is not None
        jwks = jwt.PyJWKSet.from_dict(json.loads(spec.jwks_file.read_text(encoding="utf-8")))
        return [_Key(k.key_id, k.key) for k in jwks.keys]
    except (OSError, ValueError, TypeError, jwt.PyJWKError, jwt.PyJWKSetError) as exc:
        raise ConfigurationError(f"cannot load a JWT key: {exc}") from exc


class JwtVerifier:
    """Verifies bearer tokens from the configured issuers and maps them to tenant + subject."""

    def __init__(self, issuers: tuple[JwtIssuerConfig, ...]) -> None:
        self._issuers = {cfg.issuer: cfg for cfg in issuers}
        self._keys = {cfg.issuer: [k for spec in cfg.keys for k in _load_keys(spec)] for cfg in issuers}
        for cfg in issuers:
            symmetric = cfg.algorithms[0].startswith("HS")
            for key in self._keys[cfg.issuer]:
                if isinstance(key.key, bytes) != symmetric:
                    raise ConfigurationError(
                        f"issuer {cfg.issuer}: HS* algorithms need secrets, public-key algorithms need public keys"
                    )

    @property
    def enabled(self) -> bool:
        return bool(self._issuers)

    def verify(self, token: str) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated("Malformed bearer token.") from exc
        if _FOREIGN_KEY_HEADERS & header.keys():
            raise Unauthenticated("Bearer tokens may not name their own keys (jku, x5u, jwk, x5c).")
        issuer = self._issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise Unauthenticated("Bearer token from an unknown issuer.")
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise Unauthenticated(f"Algorithm {alg!r} is not allowed for this issuer.")
        key = self._pick_key(issuer, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(issuer.algorithms),
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("Bearer token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthenticated("Bearer token is not valid yet.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"Invalid bearer token: {exc}.") from exc
        except (TypeError, ValueError) as exc:
            # PyJWT raises these when the kid names a key of another family than the alg
            # (an RSA key for ES256): a refusal, not a server error.
            raise Unauthenticated("Bearer token's algorithm does not match the key its kid names.") from exc
        return self._map(issuer, claims)

    def _pick_key(self, issuer: JwtIssuerConfig, kid: Any) -> _Key:
        keys = self._keys[issuer.issuer]
        if kid is None:
            if len(keys) == 1:
                return keys[0]
            raise Unauthenticated("Bearer token has no kid and its issuer has several keys.")
        for key in keys:
            if key.kid == kid:
                return key
        raise Unauthenticated("Bearer token names an unknown key id (kid).")

    @staticmethod
    def _map(issuer: JwtIssuerConfig, claims: dict[str, Any]) -> VerifiedToken:
        raw_tenant = claims.get(issuer.tenant_claim)
        subject = claims.get(issuer.principal_claim)
        try:
            tenant_id = uuid.UUID(str(raw_tenant))
        except ValueError as exc:
            raise Unauthenticated(f"Bearer token claim {issuer.tenant_claim!r} is not a tenant id.") from exc
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated(f"Bearer token lacks the {issuer.principal_claim!r} claim.")
        if issuer.tenants is not None and tenant_id not in issuer.tenants:
            raise Unauthenticated("This issuer may not issue tokens for that tenant.")
        jti = claims.get("jti")
        return VerifiedToken(issuer, tenant_id, subject, str(jti) if jti is not None else None)
