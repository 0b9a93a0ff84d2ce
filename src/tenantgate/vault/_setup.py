"""The key provider an installation's settings name, built once at start-up."""

from __future__ import annotations

from tenantgate.config import Settings
from tenantgate.vault._kms import AwsKms
from tenantgate.vault._provider import KeyProvider, LocalKeyFile
from tenantgate.vault._tenant_secrets import TenantSecrets
from tenantgate.vault._transit import VaultTransit

__all__ = ["key_provider_from_settings"]


def key_provider_from_settings(settings: Settings) -> KeyProvider:
    """``local`` (TENANTGATE_MASTER_KEY, else data_dir/master.key), ``vault_transit`` or ``aws_kms``."""
    if settings.key_provider == "vault_transit":
        assert settings.vault_addr is not None  # Settings.check
        assert settings.vault_token is not None
        return VaultTransit(
            addr=settings.vault_addr,
            token=settings.vault_token.get_secret_value(),
            key=settings.vault_transit_key,
            mount=settings.vault_transit_mount,
            timeout_s=settings.key_provider_timeout_s,
            per_tenant=settings.vault_transit_per_tenant,
        )
    if settings.key_provider == "aws_kms":
        assert settings.kms_key_id is not None  # Settings.check
        assert settings.kms_region is not None
        return AwsKms(
            key_id=settings.kms_key_id,
            region=settings.kms_region,
            endpoint_url=settings.kms_endpoint_url,
            timeout_s=settings.key_provider_timeout_s,
        )
    tenant_secrets = TenantSecrets(settings.tenant_keys_dir)  # outside the database: purge destroys one
    if settings.master_key is not None:
        return LocalKeyFile.from_master_key(settings.master_key.get_secret_value(), tenant_secrets=tenant_secrets)
    return LocalKeyFile.open(settings.data_dir / "master.key", tenant_secrets=tenant_secrets)
