"""A tool that opens a tenant credential by reference, for the fault tests' credential-using calls.

Loaded by the API processes as a plugin (``tests.fault_tools:PLUGIN``). It returns the names of
the credential's fields, never a value: what matters is whether the vault could open it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tenantgate.tools import Capability, ToolCall, ToolEffect, ToolPackage, tool


class ProbeArgs(BaseModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$")


@tool(
    "credential_probe@v1",
    description="Open a credential by reference and name its fields.",
    effect=ToolEffect.READ,
    capabilities={Capability.CREDENTIALS},
)
async def credential_probe(call: ToolCall, args: ProbeArgs) -> dict[str, Any]:
    credential = await call.credential(args.name)
    return {"credential_id": str(credential.id), "fields": sorted(credential.secret)}


PACKAGE = ToolPackage("credential-probes", "Open a credential by reference.", ("credential_probe@v1",))
PLUGIN: list[Any] = [credential_probe, PACKAGE]
