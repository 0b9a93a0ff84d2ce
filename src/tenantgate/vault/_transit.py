"""HashiCorp Vault's transit engine as the key provider (``pip install 'tenantgate[vault]'``).

The KEK never leaves Vault: a data key is sent to ``transit/encrypt/<key>`` and the
``vault:v<n>:...`` ciphertext is what tenantgate stores. ``rotate()`` asks Vault for a new
key version; re-wrapping moves every data key to it. Transit does not bind our context
here (the key is not a derived key); the binding to tenant and credential lives in each
sealed field's associated data.

With ``per_tenant`` (``TENANTGATE_VAULT_TRANSIT_PER_TENANT``), each tenant's data keys are
wrapped under its own transit key ``<key>-t-<tenant id>`` (created by encrypt's upsert), and
a purge deletes that key in Vault (``deletion_allowed``, then ``DELETE``): a database backup
taken before the purge no longer unwraps. The Vault token then needs ``create``/``update``
on ``<mount>/encrypt/<key>-t-*``, ``update`` on ``<mount>/keys/<key>-t-*/config`` and
``delete`` on ``<mount>/keys/<key>-t-*``. Data keys wrapped under the shared key keep
opening (the kek id names the key); ``rotate()`` rotates the shared key only.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from typing import Any

from tenantgate.errors import ConfigurationError
from tenantgate.vault._errors import CredentialUnreadable, KeyProviderUnavailable

__all__ = ["VaultTransit"]

_VERSIONED = re.compile(r"^vault:v([0-9]+):")
_KEK_ID = re.compile(r"^transit:([A-Za-z0-9_.-]+):v[0-9]+$")


class VaultTransit:
    """KEKs in a Vault transit key; ``kek_id`` is ``transit:<key>:v<version>``."""

    name = "vault_transit"

    def __init__(
        self,
        *,
        addr: str,
        token: str,
        key: str,
        mount: str = "transit",
        timeout_s: float = 5.0,
        per_tenant: bool = False,
    ) -> None:
        try:
            import hvac
            import hvac.exceptions
            import requests
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ConfigurationError(
                "The vault_transit key provider needs hvac: pip install 'tenantgate[vault]'."
            ) from exc
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise ConfigurationError("TENANTGATE_VAULT_TRANSIT_KEY: letters, digits, '_', '.', '-'.")
        self._client: Any = hvac.Client(url=addr, token=token, timeout=timeout_s)
        self._key = key
        self._mount = mount
        self._invalid: type[Exception] = hvac.exceptions.InvalidRequest
        self._missing: type[Exception] = hvac.exceptions.InvalidPath
        self._per_tenant = per_tenant
        self._faults: tuple[type[Exception], ...] = (hvac.exceptions.VaultError, requests.exceptions.RequestException)

    @property
    def current_kek_id(self) -> str:
        return f"transit:{self._key}:latest"

    def _name_for(self, tenant_id: str | None) -> str:
        if self._per_tenant and tenant_id is not None:
            return f"{self._key}-t-{uuid.UUID(tenant_id)}"
        return self._key

    def wrap(self, dek: bytes, context: Mapping[str, str]) -> tuple[str, bytes]:
        plaintext = base64.b64encode(dek).decode("ascii")
        name = self._name_for(context.get("tenant_id"))
        try:
            response = self._client.secrets.transit.encrypt_data(
                name=name, plaintext=plaintext, mount_point=self._mount
            )
            ciphertext = str(response["data"]["ciphertext"])
        except self._faults as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc
        except (KeyError, TypeError) as exc:
            raise KeyProviderUnavailable("Vault transit answered encrypt without a ciphertext.") from exc
        match = _VERSIONED.match(ciphertext)
        if match is None:
            raise KeyProviderUnavailable("Vault transit answered with a ciphertext of an unknown format.")
        return f"transit:{name}:v{match[1]}", ciphertext.encode("ascii")

    def unwrap(self, kek_id: str, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        match = _KEK_ID.fullmatch(kek_id)
        if match is None:
            raise CredentialUnreadable
        try:
            response = self._client.secrets.transit.decrypt_data(
                name=match[1], ciphertext=wrapped.decode("ascii"), mount_point=self._mount
            )
            return base64.b64decode(response["data"]["plaintext"], validate=True)
        except UnicodeDecodeError:
            raise CredentialUnreadable from None
        except self._invalid:
            # 400: Vault could not decrypt this ciphertext (tampered, foreign, wrong key).
            raise CredentialUnreadable from None
        except self._faults as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise CredentialUnreadable from None

    def destroy_tenant(self, tenant_id: str) -> bool:
        """With per-tenant keys: delete the tenant's transit key in Vault; True if there was one."""
        if not self._per_tenant:
            return False  # the shared key wraps every tenant: nothing of this tenant's to destroy in Vault
        name = self._name_for(tenant_id)
        transit = self._client.secrets.transit
        try:
            transit.update_key_configuration(name=name, deletion_allowed=True, mount_point=self._mount)
            transit.delete_key(name=name, mount_point=self._mount)
        except (self._invalid, self._missing):
            return False  # no such key: never created, or deleted by an earlier run of the purge
        except self._faults as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc
        return True

    def rotate(self) -> str:
        try:
            self._client.secrets.transit.rotate_key(name=self._key, mount_point=self._mount)
        except self._faults as exc:
            raise KeyProviderUnavailable(self._unavailable(exc)) from exc
        return self.current_kek_id

    def _unavailable(self, exc: Exception) -> str:
        # The exception text can carry Vault's error list, never our plaintext: we only send base64 of a data key
        # on encrypt, and hvac does not echo request bodies.
        return (
            f"Vault transit (key {self._key!r}) refused or did not answer ({type(exc).__name__}); "
            "check its address and token."
        )
