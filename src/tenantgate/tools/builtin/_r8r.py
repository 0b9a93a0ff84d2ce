"""The ``r8r`` package: list, show and run workflows on an r8r server over its HTTP API.

``run`` always reads the workflow's definition first, judges it, and only then executes.
In ``saas`` a workflow runs only if every node type is on the operator's allowlist
(``TENANTGATE_R8R_ALLOWED_NODES``) and nothing in it runs code or touches local paths
(shell, exec, script, python, file ... and any ``sandbox``): otherwise r8r would be a way
around the rule that saas tools never act on a machine. A definition that cannot be read
is not run. The idempotency key is the tool call's id, so a retried call runs once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import httpx
import yaml
from pydantic import BaseModel, Field, model_validator

from tenantgate.config import is_code_node
from tenantgate.context import DeploymentMode
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import Credential, ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool
from tenantgate.tools.builtin._provider import (
    ProviderUrls,
    ToolFailed,
    call_provider,
    error_message,
    json_or_text,
    parse_json,
    secret_field,
)

__all__ = ["judge_workflow", "r8r_tools"]

_PROVIDER = "r8r"
CREDENTIAL = "r8r"


class Action(StrEnum):
    LIST = "list"
    SHOW = "show"
    RUN = "run"


class R8rArgs(BaseModel):
    action: Action
    workflow: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    inputs: dict[str, Any] = Field(default_factory=dict, description="The workflow's input (run).")

    @model_validator(mode="after")
    def _workflow_needed(self) -> R8rArgs:
        if self.action is not Action.LIST and self.workflow is None:
            raise ValueError(f"{self.action.value} needs a workflow name")
        if self.action is not Action.RUN and self.inputs:
            raise ValueError("inputs are only for run")
        return self


def _r8r_error(response: httpx.Response) -> str:
    body = json_or_text(response)
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            return error
        return error_message(body, "error", "message") or str(body.get("message") or response.reason_phrase)
    return body if isinstance(body, str) and body else response.reason_phrase


def _definition(body: Any) -> dict[str, Any]:
    """The workflow definition in a ``GET /api/workflows/{name}`` answer (YAML text or an object)."""
    if not isinstance(body, dict):
        raise ToolFailed("r8r sent a workflow of an unexpected shape; it will not be run.")
    found = body.get("definition", body.get("yaml"))
    if isinstance(found, str):
        try:
            found = yaml.safe_load(found)
        except yaml.YAMLError:
            raise ToolFailed("r8r sent a workflow definition that is not valid YAML; it will not be run.") from None
    if found is None and isinstance(body.get("nodes"), list):
        found = body
    if not isinstance(found, dict) or not isinstance(found.get("nodes"), list):
        raise ToolFailed("r8r sent a workflow without a readable list of nodes; it will not be run.")
    return found


def judge_workflow(definition: dict[str, Any], *, mode: DeploymentMode, allowed: frozenset[str]) -> list[str]:
    """The node types of ``definition``; raise :class:`ToolFailed` if this mode may not run it."""
    types: list[str] = []
    for node in definition["nodes"]:
        kind = node.get("type") if isinstance(node, dict) else None
        if not isinstance(kind, str) or not kind:
            raise ToolFailed("r8r sent a workflow with a node that has no type; it will not be run.")
        types.append(kind)
    if mode is not DeploymentMode.SAAS:
        return types  # the operator's own engine on the operator's own machine
    if "sandbox" in definition or any(isinstance(n, dict) and "sandbox" in n for n in definition["nodes"]):
        raise ToolFailed("This workflow asks for a sandbox (it runs code); saas mode never runs such workflows.")
    code = sorted({t for t in types if is_code_node(t)})
    if code:
        raise ToolFailed(
            f"This workflow has node types that run code or touch local paths ({', '.join(code)}); "
            "saas mode never runs them."
        )
    outside = sorted({t for t in types if t not in allowed})
    if outside:
        raise ToolFailed(
            f"This workflow has node types not on the operator's allowlist ({', '.join(outside)}); "
            "it will not be run here."
        )
    return types


def _base(urls: ProviderUrls, credential: Credential) -> str:
    if urls.r8r is not None:
        return urls.r8r
    found = credential.metadata.get("base_url")
    if not isinstance(found, str) or not found.startswith(("https://", "http://")):
        raise ToolFailed("No r8r server: set TENANTGATE_R8R_URL, or base_url in the r8r credential's metadata.")
    return found.rstrip("/")


def r8r_tools(urls: ProviderUrls) -> list[Tool | ToolPackage]:
    """``r8r@v1`` and the ``r8r`` package."""

    @tool(
        "r8r@v1",
        description="Work with r8r workflows: list them, show one's definition, or run one with inputs.",
        effect=ToolEffect.EXTERNAL,
        capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS, Capability.WORKFLOW},
        integration="r8r",
        timeout_s=120.0,
    )
    async def r8r(call: ToolCall, args: R8rArgs) -> dict[str, Any]:
        credential = await call.credential(CREDENTIAL)
        headers = {"Authorization": f"Bearer {secret_field(credential, 'token', _PROVIDER)}"}
        api = f"{_base(urls, credential)}/api/workflows"
        async with call.http() as client:

            async def get(url: str) -> Any:
                response = await call_provider(
                    client, "GET", url, provider=_PROVIDER, explain=_r8r_error, headers=headers
                )
                return parse_json(response, _PROVIDER)

            if args.action is Action.LIST:
                body = await get(api)
                workflows = body.get("workflows") if isinstance(body, dict) else None
                if not isinstance(workflows, list):
                    raise ToolFailed("r8r sent a workflow list of an unexpected shape.")
                return {"workflows": workflows}
            assert args.workflow is not None
            shown = await get(f"{api}/{args.workflow}")
            definition = _definition(shown)
            if args.action is Action.SHOW:
                try:
                    judge_workflow(definition, mode=urls.mode, allowed=urls.r8r_allowed_nodes)
                    verdict: str = "runnable"
                except ToolFailed as exc:
                    verdict = exc.message
                return {"workflow": args.workflow, "definition": definition, "verdict": verdict}
            types = judge_workflow(definition, mode=urls.mode, allowed=urls.r8r_allowed_nodes)
            response = await call_provider(
                client, "POST", f"{api}/{args.workflow}/execute", provider=_PROVIDER, explain=_r8r_error,
                headers=headers, ok=frozenset({200, 201, 202}),
                json={"input": args.inputs, "wait": True, "idempotency_key": str(call.call_id)},
            )  # fmt: skip
            body = parse_json(response, _PROVIDER)
            if not isinstance(body, dict) or not isinstance(body.get("execution_id"), str):
                raise ToolFailed("r8r answered the run without an execution id.")
            return {
                "workflow": args.workflow,
                "node_types": sorted(set(types)),
                "execution_id": body["execution_id"],
                "status": body.get("status"),
                "output": body.get("output"),
                "duration_ms": body.get("duration_ms"),
            }

    package = ToolPackage("r8r", "Run workflows on an r8r server.", (r8r.name,))
    return [r8r, package]
