"""`tenantgate vault` (key rotation) and `tenantgate credentials` (a tenant's credentials, secrets in only).

A secret is read from standard input (a JSON object) or from hidden prompts, never from
the command line, where it would land in shell history and the process list.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Annotated

import typer
from rich.table import Table

from tenantgate.cli._common import TenantOpt, err, out, run, tenant_context
from tenantgate.errors import InvalidInput
from tenantgate.installation import Services
from tenantgate.vault import CredentialKind, required_fields

__all__ = ["credentials_app", "vault_app"]

vault_app = typer.Typer(
    help="The credential vault: rotate key-encryption keys and tenant data keys.", no_args_is_help=True
)
credentials_app = typer.Typer(help="A tenant's credentials (secrets are write-only).", no_args_is_help=True)


@vault_app.command("rotate-kek")
def rotate_kek(
    tenant: Annotated[
        list[uuid.UUID] | None, typer.Option("--tenant", help="Only these tenants (repeatable). Default: all.")
    ] = None,
) -> None:
    """Make a new key-encryption key current and re-wrap every tenant's data keys under it (online)."""

    async def action(s: Services) -> str:
        result = await s.vault.rotate_kek(lambda tenant_id: tenant_context(s, tenant_id), tenants=tenant)
        return f"Re-wrapped {result.data_keys} data keys of {result.tenants} tenants under {result.kek_id}."

    out.print(run(action))


@vault_app.command("rotate-dek")
def rotate_dek(tenant: TenantOpt) -> None:
    """Re-seal a tenant's credentials under a new data key, then destroy the old key (online)."""

    async def action(s: Services) -> str:
        ctx = tenant_context(s, tenant)
        await s.tenants.get(tenant)
        key_id, count = await s.credentials.rotate_data_key(ctx)
        return f"Re-sealed {count} credentials under data key {key_id}."

    out.print(run(action))


def _read_secret(kind: CredentialKind, fields: list[str] | None, stdin: bool) -> dict[str, str]:
    if stdin:
        try:
            value = json.loads(sys.stdin.read())
        except ValueError as exc:
            raise InvalidInput('Standard input must be a JSON object like {"api_key": "..."}.') from exc
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidInput('Standard input must be a JSON object of text values like {"api_key": "..."}.')
        return value
    names = fields or sorted(required_fields(kind))
    return {name: typer.prompt(name, hide_input=True) for name in names}


@credentials_app.command("create")
def credentials_create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Name tools refer to it by, e.g. openai or whatsapp.")],
    kind: Annotated[CredentialKind, typer.Option(help="What kind of secret it is.")],
    provider: Annotated[str | None, typer.Option(help="Provider label, e.g. openai.")] = None,
    field: Annotated[
        list[str] | None, typer.Option(help="Secret field to prompt for (repeatable). Default: the kind's fields.")
    ] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the secret as a JSON object from standard input.")
    ] = False,
    metadata: Annotated[str | None, typer.Option(help="Metadata as a JSON object (not secret).")] = None,
) -> None:
    """Store a credential, sealed. The secret comes from stdin (--stdin) or hidden prompts, never argv."""
    secret = _read_secret(kind, field, stdin)
    try:
        meta = json.loads(metadata) if metadata else {}
    except ValueError as exc:
        raise InvalidInput("--metadata must be a JSON object.") from exc

    async def action(s: Services) -> uuid.UUID:
        await s.tenants.get(tenant)
        info = await s.credentials.create(
            tenant_context(s, tenant), name=name, kind=kind, secret=secret, provider=provider, metadata=meta
        )
        return info.id

    credential_id = run(action)
    err.print(f"Stored credential {name!r} (fields: {', '.join(sorted(secret))}).")
    out.print(str(credential_id))


@credentials_app.command("list")
def credentials_list(tenant: TenantOpt) -> None:
    """List a tenant's credentials: metadata and field names, never values."""
    infos = run(lambda s: s.credentials.list(tenant_context(s, tenant)))
    table = Table("id", "name", "kind", "provider", "fields", "updated")
    for c in infos:
        table.add_row(
            str(c.id), c.name, c.kind.value, c.provider or "", ",".join(c.fields),
            c.updated_at.isoformat(timespec="seconds"),
        )  # fmt: skip
    out.print(table)


@credentials_app.command("delete")
def credentials_delete(
    tenant: TenantOpt, credential_id: Annotated[uuid.UUID, typer.Argument(help="The credential to delete.")]
) -> None:
    """Delete a credential."""
    run(lambda s: s.credentials.delete(tenant_context(s, tenant), credential_id))
    out.print(f"Deleted {credential_id}.")
