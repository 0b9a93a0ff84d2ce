"""The credential vault: envelope encryption of tenant credentials, key providers, rotation, shredding.

On top, the safe surface: :class:`Vault` (``seal``, ``open``, ``rotate``) and the
:class:`CredentialStore` that the API, the CLI and the tool executor use. Underneath, the
key providers (:class:`LocalKeyFile`, :class:`VaultTransit`, :class:`AwsKms`) that hold the
key-encryption keys. Every failure to open is the one :class:`CredentialUnreadable`; a key
provider that does not answer is :class:`KeyProviderUnavailable` (fail closed).
"""

from tenantgate.vault._credentials import (
    CredentialInfo,
    CredentialStore,
    CredentialVersion,
    KnownValues,
    require_credential_manager,
)
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable
from tenantgate.vault._kinds import NOT_SECRET_FIELDS, Credential, CredentialKind, required_fields, secret_values
from tenantgate.vault._kms import AwsKms
from tenantgate.vault._provider import KeyProvider, LocalKeyFile, TenantKeyShredding, decode_master_keys
from tenantgate.vault._setup import key_provider_from_settings
from tenantgate.vault._tenant_secrets import TenantSecrets
from tenantgate.vault._transit import VaultTransit
from tenantgate.vault._vault import KekRotation, Sealed, ShreddedKeys, Vault

__all__ = [
    "NOT_SECRET_FIELDS",
    "AwsKms",
    "Credential",
    "CredentialInfo",
    "CredentialKind",
    "CredentialStore",
    "CredentialUnreadable",
    "CredentialVersion",
    "KekRotation",
    "KeyProvider",
    "KeyProviderUnavailable",
    "KnownValues",
    "LocalKeyFile",
    "Sealed",
    "ShreddedKeys",
    "TenantKeyShredding",
    "TenantSecrets",
    "Vault",
    "VaultTransit",
    "decode_master_keys",
    "key_provider_from_settings",
    "require_credential_manager",
    "required_fields",
    "secret_values",
]
