"""Settings: read once at start-up from ``TENANTGATE_*`` variables, then passed down.

Nothing deeper in the code reads the environment. :meth:`Settings.check` refuses
unsafe or incomplete combinations with a message that says what to change.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import re
import uuid
from decimal import Decimal
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import platformdirs
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tenantgate.context import DeploymentMode
from tenantgate.errors import ConfigurationError

__all__ = ["R8R_CODE_WORDS", "JwtIssuerConfig", "JwtKeyConfig", "Settings", "default_data_dir", "is_code_node"]

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
_PREFIX = "TENANTGATE_"


# Words that make a workflow node type one that runs code or touches local paths (r8r and
# look-alikes: "shell", "core/exec", "run-python", "file_write"). Never run in saas.
R8R_CODE_WORDS = frozenset(
    {
        "shell", "sh", "bash", "powershell", "exec", "execute", "command", "cmd", "process", "subprocess",
        "spawn", "script", "code", "eval", "function", "python", "py", "javascript", "js", "node", "deno",
        "lua", "ruby", "wasm", "sandbox", "file", "files", "filesystem", "fs", "path", "dir", "directory",
    }
)  # fmt: skip


def is_code_node(node_type: str) -> bool:
    """True if a workflow node type, by any word of its name, runs code or touches local paths."""
    return any(word in R8R_CODE_WORDS for word in re.split(r"[^a-z0-9]+", node_type.lower()) if word)


def _local_host(host: str | None, query: str) -> bool:
    """Loopback or a Unix socket: traffic that never leaves the machine."""
    if not host or host.startswith("/") or dict(parse_qsl(query)).get("host", "").startswith("/"):
        return True
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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

    # Self-hosted tools: the tenants' workspaces and the sandboxed shell.
    workspace_root: Path | None = None  # unset: <data_dir>/workspaces, one 0700 directory per tenant
    workspace_max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    workspace_max_list_entries: int = Field(default=1000, ge=1, le=100_000)
    shell_sandbox: Literal["bubblewrap", "none"] = "bubblewrap"  # none: the operator's explicit opt-out
    shell_bwrap: str = "bwrap"
    shell_network: bool = False
    shell_timeout_s: float = Field(default=30.0, gt=0, le=3500)
    shell_max_timeout_s: float = Field(default=300.0, gt=0, le=3500)
    shell_cpu_seconds: int = Field(default=30, ge=1, le=3600)
    shell_memory_bytes: int = Field(default=1024 * 1024 * 1024, ge=64 * 1024 * 1024)
    shell_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    shell_processes: int = Field(default=64, ge=4, le=100_000)
    shell_open_files: int = Field(default=256, ge=16, le=1024 * 1024)
    shell_output_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Outbound HTTP of tools. Internal networks an operator lets tools reach (CIDRs or IP
    # addresses, comma-separated): self_hosted only, refused in saas. Empty: public only.
    egress_allow_private: Annotated[tuple[str, ...], NoDecode] = ()
    egress_timeout_s: float = Field(default=30.0, gt=0, le=300)
    egress_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=512 * 1024 * 1024)
    # API providers of the built-in tools: the real public endpoints, overridable (tests, proxies).
    brave_search_url: str = "https://api.search.brave.com"
    whatsapp_graph_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = Field(default="v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,2}$")
    google_sheets_url: str = "https://sheets.googleapis.com"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
    # The r8r server; unset, each tenant's r8r credential names its own in metadata "base_url".
    r8r_url: str | None = None
    # Node types a workflow may contain to run in saas (comma-separated). Code-running types never.
    r8r_allowed_nodes: Annotated[tuple[str, ...], NoDecode] = (
        "http", "transform", "if", "switch", "merge", "filter", "sort", "limit", "set",
        "aggregate", "split", "dedupe", "wait", "datetime", "debug",
    )  # fmt: skip
    # The credential vault's key-encryption keys: a local key file (data_dir/master.key, or
    # master_key), HashiCorp Vault transit, or AWS KMS.
    key_provider: Literal["local", "vault_transit", "aws_kms"] = "local"
    master_key: SecretStr | None = None  # base64 of 32 bytes; comma-separated, current first
    vault_addr: str | None = None
    vault_token: SecretStr | None = None
    vault_transit_key: str = "tenantgate"
    vault_transit_mount: str = "transit"
    kms_key_id: str | None = None
    kms_region: str | None = None
    kms_endpoint_url: str | None = None
    key_provider_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # The agent runtime: limits per turn, and the platform's default planner. Real providers
    # need explicit configuration; with nothing configured the scripted planner answers.
    agent_step_limit: int = Field(default=8, ge=1, le=100)
    agent_time_limit_s: float = Field(default=120.0, gt=0, le=3600)
    agent_planner: Literal["scripted", "openai", "anthropic"] = "scripted"
    agent_provider_timeout_s: float = Field(default=60.0, gt=0, le=600)
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str | None = None
    openai_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_model: str | None = None
    anthropic_api_key: SecretStr | None = None
    # Tenant schedules (cron jobs, heartbeat tasks). Unset: the mode's defaults, conservative in
    # saas (20 jobs, 5 min; 10 heartbeats, 15 min) and generous in self_hosted (see schedules/_limits.py).
    cron_max_jobs: int | None = Field(default=None, ge=0, le=100_000)
    cron_min_interval_seconds: int | None = Field(default=None, ge=60, le=86_400)
    heartbeat_max_tasks: int | None = Field(default=None, ge=0, le=10_000)
    heartbeat_min_interval_seconds: int | None = Field(default=None, ge=60, le=86_400)
    # The most skill text that enters a prompt's tenant layer.
    skills_prompt_max_chars: int = Field(default=8000, ge=500, le=100_000)
    # Quotas: rate limits live in memory (one process's view) unless Redis is set, which every
    # API and worker process then shares. Authentication failures are limited before any tenant
    # is known, per source address and per API key prefix.
    redis_url: SecretStr | None = None
    # Transport security for `tenantgate serve`: HTTPS with this certificate chain and key (PEM).
    # saas refuses a non-loopback address without them unless it sits behind a TLS-terminating
    # proxy named here (IPs or CIDRs): only those peers' X-Forwarded-For/-Proto are believed.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    quota_backend_timeout_s: float = Field(default=0.5, gt=0, le=10)
    auth_failures_per_minute_per_address: int = Field(default=120, ge=1, le=100_000)
    auth_failures_per_minute_per_prefix: int = Field(default=10, ge=1, le=100_000)
    # LLM prices in cost units per 1000 tokens, as JSON: {"<provider>:<model>" or "<provider>:*":
    # {"input_per_1k": n, "output_per_1k": n}}. A model not named pays model_default_price,
    # which defaults high (15 and 75: like the dearest models), never zero (quotas/_prices.py).
    model_prices: Annotated[dict[str, Any], NoDecode] = Field(default_factory=dict)
    model_default_price: Annotated[dict[str, Any] | None, NoDecode] = None

    @field_validator("model_prices", "model_default_price", mode="before")
    @classmethod
    def _parse_prices(cls, value: Any) -> Any:
        # From the environment this is JSON; decimals stay exact (0.15 is not 0.1499999...).
        if isinstance(value, str):
            text = value.strip()
            try:
                return json.loads(text, parse_float=Decimal) if text else None
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc.msg} (at {exc.pos})") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url starts with redis://, rediss:// or unix://")
        return value

    # Directives (side effects): "inline" runs each in the process that records it (one
    # attempt); "queue" defers it to the PostgreSQL job queue that `tenantgate worker` serves.
    directives: Literal["inline", "queue"] = "inline"
    directive_max_attempts: int = Field(default=5, ge=1, le=100)
    directive_backoff_s: int = Field(default=1, ge=1, le=3600)  # exponential: n-th retry waits backoff**n
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    worker_heartbeat_s: float = Field(default=5.0, gt=0, le=600)
    worker_stalled_after_s: float = Field(default=20.0, gt=0, le=3600)
    worker_schedule_poll_s: float = Field(default=15.0, gt=0, le=3600)  # how often due cron/heartbeat jobs are run
    # Artifacts: stored tenant content (raw web pages, uploads) in <data_dir>/artifacts unless
    # artifacts_root is set. Signed URLs are HMAC'd with a key derived from the pepper unless
    # artifact_url_key is given (every API process must then share it).
    artifacts_root: Path | None = None
    artifact_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1, le=5 * 1024 * 1024 * 1024)
    artifact_tenant_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=0, le=10 * 1024**4)
    artifact_url_ttl_s: int = Field(default=300, ge=1, le=7 * 86_400)
    artifact_url_max_ttl_s: int = Field(default=3600, ge=1, le=7 * 86_400)
    artifact_url_key: SecretStr | None = None
    # The artifact storage backend: "local" (artifacts_root) or "s3" (AWS S3 or anything speaking
    # its API, e.g. MinIO, at artifact_s3_endpoint_url; credentials from boto3's usual chain).
    # Every object is written with server-side encryption: AES256, or aws:kms with the key id.
    artifact_backend: Literal["local", "s3"] = "local"
    artifact_s3_bucket: str | None = None
    artifact_s3_prefix: str = Field(default="", max_length=200, pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*/)*$")
    artifact_s3_endpoint_url: str | None = None
    artifact_s3_region: str | None = None
    artifact_s3_sse: Literal["AES256", "aws:kms"] = "AES256"
    artifact_s3_kms_key_id: str | None = None
    artifact_s3_timeout_s: float = Field(default=10.0, gt=0, le=300)

    # Retention: how long each data class is kept before the worker's retention job removes it
    # (days; "forever" or empty keeps it forever). Tenants override these per class
    # (PUT /v1/retention); compliance modes may impose floors (hipaa: audit payloads 6 years).
    retention_run_events_days: Annotated[int | None, NoDecode] = Field(default=90, ge=1, le=36_500)
    retention_messages_days: Annotated[int | None, NoDecode] = Field(default=365, ge=1, le=36_500)
    retention_artifacts_days: Annotated[int | None, NoDecode] = Field(default=90, ge=1, le=36_500)
    retention_audit_payloads_days: Annotated[int | None, NoDecode] = Field(default=400, ge=1, le=36_500)
    retention_soft_deleted_days: Annotated[int | None, NoDecode] = Field(default=30, ge=1, le=36_500)
    retention_every_s: float = Field(default=3600.0, ge=0, le=7 * 86_400)  # the worker's period; 0 disables
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)  # rows per transaction
    # The restore drill: a URL of a role that may dump every table, create and drop databases
    # (a superuser, or a BYPASSRLS role with CREATEDB). Unset: the embedded server's superuser,
    # else the owner URL. pg_dump/pg_restore come from pg_bin_dir, else the embedded server's, else PATH.
    drill_database_url: SecretStr | None = None
    pg_bin_dir: Path | None = None

    @field_validator(
        "retention_run_events_days", "retention_messages_days", "retention_artifacts_days",
        "retention_audit_payloads_days", "retention_soft_deleted_days", mode="before",
    )  # fmt: skip
    @classmethod
    def _forever(cls, value: Any) -> Any:
        # "forever" (or empty) from the environment means no limit: keep the class forever.
        if isinstance(value, str) and value.strip().lower() in ("", "forever", "none", "null"):
            return None
        return value

    # Observability. /metrics: a bearer token when set; without one it answers only requests
    # from loopback to a loopback address that no proxy forwarded (api/_metrics.py). Tenant labels
    # only for the tenants named here (names or ids, comma-separated, at most 100): bounded series.
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_tenant_labels: Annotated[tuple[str, ...], NoDecode] = ()
    metrics_queue_cache_s: float = Field(default=5.0, ge=0, le=300)  # directive queue depth: read at most this often
    # OpenTelemetry spans (the `otel` extra): off by default; on, through the global tracer provider.
    otel_enabled: bool = False
    # Anomaly detection over audited events, alerts, and their notifications (see alerts/).
    alerts_enabled: bool = True
    alerts_webhook_attempts: int = Field(default=5, ge=1, le=20)
    alerts_webhook_backoff_s: float = Field(default=1.0, gt=0, le=600)  # exponential: n-th retry waits backoff*2**n

    @field_validator("metrics_tenant_labels", mode="before")
    @classmethod
    def _parse_tenant_labels(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("metrics_tenant_labels")
    @classmethod
    def _bounded_tenant_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > 100:
            raise ValueError("metrics_tenant_labels names at most 100 tenants: each one adds series to every metric")
        return value

    # The admin console (/console): a session lives at most this long, and ends after this long idle.
    console_session_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 86_400)
    console_idle_timeout_s: int = Field(default=30 * 60, ge=30, le=7 * 86_400)

    # Purge by tenant: how long a requested purge waits before the worker executes it, and how
    # often the worker looks. The local key provider keeps one secret per tenant (0600 files) in
    # vault_tenant_keys_dir (unset: <data_dir>/tenant-keys); a purge destroys it (crypto-shredding).
    purge_grace_s: int = Field(default=7 * 86_400, ge=0, le=365 * 86_400)
    worker_purge_poll_s: float = Field(default=60.0, gt=0, le=86_400)
    purge_batch_rows: int = Field(default=5000, ge=1, le=1_000_000)
    vault_tenant_keys_dir: Path | None = None
    vault_transit_per_tenant: bool = False  # a transit key per tenant, deleted by its purge

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

    @field_validator("egress_allow_private", "r8r_allowed_nodes", "trusted_proxies", mode="before")
    @classmethod
    def _parse_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("egress_allow_private", "trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        for item in value:
            try:
                ip_network(item, strict=True)
            except ValueError as exc:
                raise ValueError(f"{info.field_name}: {item!r} is not a CIDR or IP address ({exc})") from None
        return value

    @field_validator("brave_search_url", "whatsapp_graph_url", "google_sheets_url", "google_token_url", "r8r_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"provider URLs start with https:// (or http://): {value!r}")
        return value.rstrip("/") if value is not None else None

    @field_validator("db_role_prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if not value or not set(value) <= _ROLE_PREFIX_CHARS or not value[0].isalpha() or len(value) > 40:
            raise ValueError("db_role_prefix: lowercase letters, digits and _, starting with a letter")
        return value

    @classmethod
    def from_env_file(cls, path: Path) -> Settings:
        """The settings one env file describes, the process environment ignored: to check a file.

        A ``TENANTGATE_`` name that is no setting is refused (a typo would otherwise be ignored
        silently, and its default used); other names in the file are left alone.
        """
        if not path.is_file():
            raise ConfigurationError("no such file.")
        found = dotenv_values(path)
        values: dict[str, Any] = {k.removeprefix(_PREFIX).lower(): v for k, v in found.items() if k.startswith(_PREFIX)}
        unknown = sorted(name for name in values if name not in cls.model_fields)
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, list(cls.model_fields), n=1)
                hint = f" (did you mean {_PREFIX}{close[0].upper()}?)" if close else ""
                hints.append(f"{_PREFIX}{name.upper()}{hint}")
            raise ConfigurationError(f"not a tenantgate setting: {', '.join(hints)}.")
        empty = sorted(f"{_PREFIX}{name.upper()}" for name, value in values.items() if value is None)
        if empty:
            raise ConfigurationError(f"no value given for {', '.join(empty)}.")
        # An env prefix no variable has: only the file's values (and the defaults) count.
        return cls(_env_file=None, _env_prefix="TENANTGATE_FILE_CHECK_", **values)

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def artifacts_dir(self) -> Path:
        """Where the local artifact backend keeps tenant content."""
        return self.artifacts_root if self.artifacts_root is not None else self.data_dir / "artifacts"

    @property
    def tenant_keys_dir(self) -> Path:
        """Where the local key provider keeps each tenant's secret (destroyed when the tenant is purged)."""
        return self.vault_tenant_keys_dir if self.vault_tenant_keys_dir is not None else self.data_dir / "tenant-keys"

    @property
    def workspace_dir(self) -> Path:
        """Where the tenants' workspaces live."""
        return self.workspace_root if self.workspace_root is not None else self.data_dir / "workspaces"

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
        if self.shell_sandbox == "none" and self.mode is DeploymentMode.SAAS:
            raise ConfigurationError(
                "TENANTGATE_SHELL_SANDBOX=none is a self_hosted opt-out; saas has no shell tool. Remove it."
            )
        if self.artifact_url_ttl_s > self.artifact_url_max_ttl_s:
            raise ConfigurationError("TENANTGATE_ARTIFACT_URL_TTL_S must not exceed TENANTGATE_ARTIFACT_URL_MAX_TTL_S.")
        if self.artifact_url_key is not None and len(self.artifact_url_key.get_secret_value()) < 32:
            raise ConfigurationError("TENANTGATE_ARTIFACT_URL_KEY must be at least 32 characters of random data.")
        if self.artifact_backend == "s3" and not self.artifact_s3_bucket:
            raise ConfigurationError("TENANTGATE_ARTIFACT_BACKEND=s3 needs TENANTGATE_ARTIFACT_S3_BUCKET.")
        if (self.artifact_s3_sse == "aws:kms") != (self.artifact_s3_kms_key_id is not None):
            raise ConfigurationError(
                "TENANTGATE_ARTIFACT_S3_KMS_KEY_ID goes with TENANTGATE_ARTIFACT_S3_SSE=aws:kms (and only with it)."
            )
        if self.shell_timeout_s > self.shell_max_timeout_s:
            raise ConfigurationError("TENANTGATE_SHELL_TIMEOUT_S must not exceed TENANTGATE_SHELL_MAX_TIMEOUT_S.")
        if self.egress_allow_private and self.mode is DeploymentMode.SAAS:
            raise ConfigurationError(
                "TENANTGATE_EGRESS_ALLOW_PRIVATE is set, but saas mode never lets tools reach internal "
                "networks: unset it, or run in self_hosted mode."
            )
        if self.mode is DeploymentMode.SAAS:
            code_nodes = sorted(n for n in self.r8r_allowed_nodes if is_code_node(n))
            if code_nodes:
                raise ConfigurationError(
                    f"TENANTGATE_R8R_ALLOWED_NODES names node types that run code or touch local paths "
                    f"({', '.join(code_nodes)}); saas mode never runs those: remove them."
                )
        if self.agent_planner == "openai" and not self.openai_model:
            raise ConfigurationError("TENANTGATE_AGENT_PLANNER=openai needs TENANTGATE_OPENAI_MODEL.")
        if self.agent_planner == "anthropic" and not self.anthropic_model:
            raise ConfigurationError("TENANTGATE_AGENT_PLANNER=anthropic needs TENANTGATE_ANTHROPIC_MODEL.")
        for name, base in (("OPENAI", self.openai_base_url), ("ANTHROPIC", self.anthropic_base_url)):
            if not base.startswith(("https://", "http://")):
                raise ConfigurationError(f"TENANTGATE_{name}_BASE_URL must be an http(s) URL.")
        urls = [self.database_url, self.admin_database_url, self.owner_database_url]
        for url in urls:
            if url is not None and not url.get_secret_value().startswith(("postgresql://", "postgres://")):
                raise ConfigurationError("database URLs must start with postgresql://")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigurationError("TENANTGATE_TLS_CERT and TENANTGATE_TLS_KEY go together: set both or neither.")
        self._check_key_provider()

    def transport_warnings(self) -> list[str]:
        """Loud warnings for a saas installation whose links to its database or Redis are not verified TLS."""
        if self.mode is not DeploymentMode.SAAS:
            return []
        found = []
        for name, url in (("TENANTGATE_DATABASE_URL", self.database_url),
                          ("TENANTGATE_ADMIN_DATABASE_URL", self.admin_database_url)):  # fmt: skip
            if url is None:
                continue
            parts = urlsplit(url.get_secret_value())
            sslmode = dict(parse_qsl(parts.query)).get("sslmode") or os.environ.get("PGSSLMODE") or "prefer"
            if sslmode != "verify-full" and not _local_host(parts.hostname, parts.query):
                found.append(
                    f"{name} uses sslmode={sslmode}: in saas, tenant data crosses the network to "
                    f"{parts.hostname} without a verified server certificate. Add ?sslmode=verify-full "
                    "(and sslrootcert=...) to the URL."
                )
        if self.redis_url is not None:
            parts = urlsplit(self.redis_url.get_secret_value())
            if parts.scheme == "redis" and not _local_host(parts.hostname, ""):
                found.append(f"TENANTGATE_REDIS_URL reaches {parts.hostname} without TLS: use rediss:// in saas.")
        return found

    def _check_key_provider(self) -> None:
        if self.key_provider == "local":
            if not self.embedded and self.master_key is None:
                raise ConfigurationError(
                    "TENANTGATE_MASTER_KEY is required with an external database and the local key provider, "
                    "so every process shares the key that wraps tenant data keys: generate one with "
                    "`python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'`, "
                    "or set TENANTGATE_KEY_PROVIDER=vault_transit or aws_kms."
                )
            if self.master_key is not None:
                for part in self.master_key.get_secret_value().split(","):
                    try:
                        ok = len(base64.b64decode(part.strip(), validate=True)) == 32
                    except (binascii.Error, ValueError):
                        ok = False
                    if not ok:
                        raise ConfigurationError(
                            "TENANTGATE_MASTER_KEY must be base64 of 32 random bytes (comma-separated, current first)."
                        )
        elif self.key_provider == "vault_transit":
            if not self.vault_addr or self.vault_token is None:
                raise ConfigurationError(
                    "The vault_transit key provider needs TENANTGATE_VAULT_ADDR and TENANTGATE_VAULT_TOKEN."
                )
        elif not self.kms_key_id or not self.kms_region:
            raise ConfigurationError("The aws_kms key provider needs TENANTGATE_KMS_KEY_ID and TENANTGATE_KMS_REGION.")
