"""A payment-like tool for directive tests: one POST to a provider that honours Idempotency-Key.

Loaded by the test process and, as a plugin (``tests.directive_tools:PLUGIN``), by the
``tenantgate worker`` subprocess.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from tenantgate.tools import Capability, ToolCall, ToolEffect, ToolPackage, tool


class ChargeArgs(BaseModel):
    url: str = Field(pattern=r"^http://127\.0\.0\.1:\d+/v1/charges$")  # the loopback fake only
    amount: int = Field(ge=1, le=1_000_000)


@tool(
    "charge@v1",
    description="Charge an amount at the payment provider.",
    effect=ToolEffect.EXTERNAL,
    capabilities={Capability.NET_EGRESS},
    timeout_s=3.0,
)
async def charge(call: ToolCall, args: ChargeArgs) -> dict[str, Any]:
    response = await call.http().post(
        args.url, json={"amount": args.amount}, headers={"Idempotency-Key": call.idempotency_key}
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return {"charge_id": body["id"], "amount": body["amount"]}


PACKAGE = ToolPackage("payments", "Charge at the payment provider.", ("charge@v1",))
PLUGIN: list[Any] = [charge, PACKAGE]
POLICY: dict[str, Any] = {"packages": [{"package": "payments"}], "grants": [{"id": "pay", "tools": ["charge@v1"]}]}
