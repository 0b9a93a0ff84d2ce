"""Settings: read once at start-up from ``TENANTGATE_*`` variables, then passed down.

Nothing deeper in the code reads the environment. :meth:`Settings.check` refuses
unsafe or incomplete combinations with a message that says what to change.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tenantgate.context import DeploymentMode
from tenantgate.errors import ConfigurationError

__all__ = ["JwtIssuerConfig", "JwtKeyConfig", "Settings", "default_data_dir"]

# Algorithms a JWT issuer may allow. "none" is not in this list and never will be.
JWT_ALGORITHMS = frozenset(
    {
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512",
        "EdDSA",
        "HS256", "HS384", "HS512",
    }
)  # fmt: skip
_ROLE_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def default_data_dir() -> Path:
    return platformdirs.user_data_path("tenantgate", appauthor=False)


class JwtKeyConfig(BaseModel):
    """One verification key source: inline PEM, a PEM file, an inline JWK or a JWKS file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kid: str | None = None
    pem: str | None = None
    pem_file: Path | None = None
    jwk: dict[str, Any] | None = None
    jwks_file: Path | None = None
    # Only for HS* algorithms: the shared secret.
    secret: SecretStr | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> JwtKeyConfig:
        sources = [self.pem, self.pem_file, self.jwk, self.jwks_file, self.secret]
        if sum(s is not None for s in sources) != 1:
            raise ValueError("a JWT key needs exactly one of pem, pem_file, jwk, jwks_file, secret")
        if self.secret is not None and len(self.secret.get_secret_value().encode("utf-8")) < 32:
            # RFC 7518 §3.2: an HS256 key is at least as long as the hash output.
            raise ValueError("an HMAC secret for JWTs must be at least 32 bytes")
        return self


class JwtIssuerConfig(BaseModel):
    """A trusted token issuer: its own algorithm allowlist, keys and claim mapping."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    algorithms: tuple[str, ...] = Field(min_length=1)
    keys: tuple[JwtKeyConfig, ...] = Field(min_length=1)
    tenant_claim: str = "tenant_id"
    principal_claim: str = "sub"
    # When set, tokens of this issuer may only name these tenants.
    tenants: frozenset[uuid.UUID] | None = None
    leeway_seconds: int = Field(default=30, ge=0, le=300)

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [a for a in value if a not in JWT_ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported JWT algorithms {unknown}; allowed: {sorted(JWT_ALGORITHMS)}")
        symmetric = {a for a in value if a.startswith("HS")}
        if symmetric and len(symmetric) != len(value):
            # Mixing HMAC and public-key algorithms under one issuer is how algorithm
            # confusion attacks start (a public key used as an HMAC secret).
            raise ValueError("an issuer may not mix HS* and public-key algorithms")
        return value


class Settings(BaseSettings):
    """Everything tenantgate is configured with. Immutable once loaded."""

    model_config = SettingsConfigDict(env_prefix="TENANTGATE_", frozen=True, extra="ignore")

    mode: DeploymentMode = DeploymentMode.SAAS
    data_dir: Path = Field(default_factory=default_data_dir)

    # External PostgreSQL. Unset: an embedded server in data_dir.
    database_url: SecretStr | None = None  # the app role: serves all tenant traffic
    admin_database_url: SecretStr | None = None  # the BYPASSRLS role: audited platform operations
    owner_database_url: SecretStr | None = None  # the owner: migrations only
    db_role_prefix: str = "tenantgate"
    db_pool_size: int = Field(default=10, ge=1, le=200)

    # HMAC pepper for API key hashes. Embedded default: generated into data_dir.
    pepper: SecretStr | None = None

    jwt_issuers: Annotated[tuple[JwtIssuerConfig, ...], NoDecode] = ()
    # Operators' own tools: "package.module:attribute" references, comma-separated.
    plugins: Annotated[tuple[str, ...], NoDecode] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Tenant schedules (cron jobs, heartbeat tasks). Unset: the mode's defaults, conservative in
    # saas (20 jobs, 5 min; 10 heartbeats, 15 min) and generous in self_hosted (see schedules/_limits.py).
    cron_max_jobs: int | None = Field(default=None, ge=0, le=100_000)
    cron_min_interval_seconds: int | None = Field(default=None, ge=60, le=86_400)
    heartbeat_max_tasks: int | None = Field(default=None, ge=0, le=10_000)
    heartbeat_min_interval_seconds: int | None = Field(default=None, ge=60, le=86_400)
    # The most skill text that enters a prompt's tenant layer.
    skills_prompt_max_chars: int = Field(default=8000, ge=500, le=100_000)

    @field_validator("jwt_issuers", mode="before")
    @classmethod
    def _parse_issuers(cls, value: Any) -> Any:
        # From the environment this is JSON, or @path to a JSON file.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("@"):
                text = Path(text[1:]).read_text(encoding="utf-8")
            return json.loads(text) if text else ()
        return value

    @field_validator("plugins", mode="before")
    @classmethod
    def _parse_plugins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(ref.strip() for ref in value.split(",") if ref.strip())
        return value

    @field_validator("db_role_prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if not value or not set(value) <= _ROLE_PREFIX_CHARS or not value[0].isalpha() or len(value) > 40:
            raise ValueError("db_role_prefix: lowercase letters, digits and _, starting with a letter")
        return value

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def check(self) -> None:
        """Refuse unsafe or incomplete combinations, naming what to change."""
        if not self.embedded:
            if self.admin_database_url is None:
                raise ConfigurationError(
                    "TENANTGATE_DATABASE_URL is set but TENANTGATE_ADMIN_DATABASE_URL is not: "
                    "platform operations need the admin role's URL (see `tenantgate db init`)."
                )
            if self.pepper is None:
                raise ConfigurationError(
                    "TENANTGATE_PEPPER is required with an external database, so every API process "
                    "hashes keys alike: generate one with `python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))'`."
                )
        if self.pepper is not None and len(self.pepper.get_secret_value()) < 32:
            raise ConfigurationError("TENANTGATE_PEPPER must be at least 32 characters of random data.")
        urls = [self.database_url, self.admin_database_url, self.owner_database_url]
        for url in urls:
            if url is not None and not url.get_secret_value().startswith(("postgresql://", "postgres://")):
                raise ConfigurationError("database URLs must start with postgresql://")
