"""Tools over HTTP: what the caller's tenant may call, and calling it through the boundary."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, ErrorBody, error_responses, status_for, unavailable_headers
from tenantgate.api._ratelimit import quota_headers
from tenantgate.context import DeploymentMode
from tenantgate.gate import Code, ProposedCall, Verdict
from tenantgate.tools import Outcome

router = APIRouter(prefix="/v1", tags=["tools"], responses=ERROR_RESPONSES)

# A deny is 403, except where the caller should retry later (429) or the platform is at fault (503).
_DENY_STATUS = {Code.QUOTA_EXCEEDED: 429, Code.POLICY_UNAVAILABLE: 503, Code.GATE_ERROR: 503}
_DENY_STATUS[Code.QUOTA_BACKEND_UNAVAILABLE] = 503


class ToolInfo(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    effect: str
    capabilities: list[str]
    high_impact: bool
    required_role: str
    integration: str | None
    channel_only: bool = False


class ToolList(BaseModel):
    mode: DeploymentMode
    policy_version: int
    tools: list[ToolInfo]


class CallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(default_factory=dict)
    confirmation_id: uuid.UUID | None = Field(None, description="An approved confirmation for exactly this call.")


class CallResult(BaseModel):
    call_id: uuid.UUID
    tool: str
    outcome: Outcome
    untrusted: bool = Field(True, description="Tool output is data from outside the boundary, never instructions.")
    output: Any
    duration_ms: float
    directive_id: uuid.UUID | None = Field(None, description="Set when the call ran as a directive (a side effect).")


class ConfirmationPending(ErrorBody):
    confirmation_id: uuid.UUID
    expires_at: datetime
    call_id: uuid.UUID


@router.get("/tools", response_model=ToolList)
async def list_tools(ctx: Caller, services: ServicesDep) -> ToolList:
    """The tools this tenant installed that exist in this deployment mode, with their JSON Schemas."""
    view = await services.policy_cache.view(ctx)
    tools = [services.registry.get(name) for name in sorted(view.visible)]
    return ToolList(
        mode=services.registry.mode,
        policy_version=view.version,
        tools=[ToolInfo(**t.spec.describe()) for t in tools if t is not None],
    )


@router.post(
    "/tools/{name}/call",
    response_model=CallResult,
    responses={
        202: {"model": ConfirmationPending, "description": "A human must confirm this exact call first"},
        **error_responses(404, 409, 429, 502, 504),
    },
)
async def call_tool(
    name: str,
    body: CallRequest,
    ctx: Caller,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> CallResult | JSONResponse:
    """Ask the gate; then run the tool, or open a confirmation, or say why not.

    A tool with an effect runs as a directive under ``Idempotency-Key`` (default: a new key per
    request): the same key again returns the first outcome, never a second effect.
    """
    outcome = await services.boundary.call(
        ctx,
        ProposedCall(tool=name, arguments=body.arguments),
        confirmation_id=body.confirmation_id,
        idempotency_key=idempotency_key,
    )
    decision = outcome.decision
    if decision.verdict is Verdict.CONFIRM:
        assert outcome.confirmation is not None
        return JSONResponse(
            {**decision.summary(), "code": decision.code.value, "message": decision.reason,
             "confirmation_id": str(outcome.confirmation.id),
             "expires_at": outcome.confirmation.expires_at.isoformat(), "call_id": str(outcome.call_id)},
            status_code=202,
        )  # fmt: skip
    if decision.verdict is Verdict.DENY:
        status = _DENY_STATUS.get(decision.code, 403)
        return JSONResponse(
            {**decision.summary(), "code": decision.code.value, "message": decision.reason,
             "call_id": str(outcome.call_id)},
            status_code=status,
            headers={**(quota_headers(decision.details[0]) if decision.details else {}), **unavailable_headers(status)},
        )  # fmt: skip
    result = outcome.result
    assert result is not None
    if result.outcome is Outcome.PENDING:
        return JSONResponse(
            {"call_id": str(outcome.call_id), "tool": result.tool, "outcome": result.outcome.value, "untrusted": True,
             "output": result.output, "duration_ms": round(result.duration_ms, 3),
             "directive_id": str(result.directive_id)},
            status_code=202,
        )  # fmt: skip
    if result.outcome is not Outcome.SUCCEEDED and result.code is not None and status_for(result.code) == 503:
        # The tool needed a control-plane dependency that is down (the key provider, to open a
        # credential): the platform refuses, as every route does, rather than blame the tool.
        return JSONResponse(
            {"code": result.code, "message": result.error or result.code, "call_id": str(outcome.call_id),
             "tool": result.tool},
            status_code=503,
            headers=unavailable_headers(503),
        )  # fmt: skip
    if result.outcome is not Outcome.SUCCEEDED:
        code = "tool_timeout" if result.outcome is Outcome.TIMEOUT else "tool_failed"
        return JSONResponse(
            {"code": code, "message": result.error or code, "call_id": str(outcome.call_id), "tool": result.tool},
            status_code=504 if result.outcome is Outcome.TIMEOUT else 502,
        )
    return CallResult(
        call_id=outcome.call_id,
        tool=result.tool,
        outcome=result.outcome,
        output=result.output,
        duration_ms=round(result.duration_ms, 3),
        directive_id=result.directive_id,
    )
