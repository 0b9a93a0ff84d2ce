"""The Anthropic Messages API planner, with tool use.

Wire format: ``POST {base_url}/v1/messages`` with ``x-api-key`` and ``anthropic-version:
2023-06-01``; ``system``, ``messages`` and ``tools [{name, description, input_schema}]``; the
answer's ``content`` is a list of ``{type: "text"}`` and ``{type: "tool_use", id, name, input}``
blocks with ``stop_reason`` and ``usage {input_tokens, output_tokens}``; results go back in a
user message as ``{"type": "tool_result", "tool_use_id", "content"}`` blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from tenantgate.agent._planner import (
    AssistantTurn,
    Conversation,
    Plan,
    PlannedCall,
    PlannerError,
    ToolResults,
    Usage,
    UserTurn,
    tool_from_wire,
    wire_name,
)
from tenantgate.agent._wire import post_json
from tenantgate.tools import ToolSpec

__all__ = ["ANTHROPIC_VERSION", "AnthropicPlanner"]

ANTHROPIC_VERSION = "2023-06-01"


def _error_message(payload: Any) -> str | None:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("type")
        return f"{kind}: {error['message']}" if isinstance(kind, str) else str(error["message"])
    return None


def _malformed(what: str) -> PlannerError:
    return PlannerError(f"anthropic answered with a malformed response: {what}.", reason="malformed_response")


class AnthropicPlanner:
    """Messages API with tool use, through an egress-checked client."""

    name = "anthropic"

    def __init__(
        self, *, client: httpx.AsyncClient, base_url: str, model: str, api_key: str, vendor: str, max_tokens: int
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._key = api_key
        self._max_tokens = max_tokens
        self.model: str | None = model
        self.vendor: str | None = vendor

    def request_body(self, conversation: Conversation, tools: Sequence[ToolSpec]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for turn in conversation.turns:
            if isinstance(turn, UserTurn):
                messages.append({"role": "user", "content": turn.text})
            elif isinstance(turn, AssistantTurn):
                blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
                blocks.extend(c.wire for c in turn.calls)
                messages.append({"role": "assistant", "content": blocks})
            elif isinstance(turn, ToolResults):
                messages.append(
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": r.call_id,
                                "content": r.content,
                                **({"is_error": True} if r.is_error else {}),
                            }
                            for r in turn.results
                        ],
                    }
                )
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self._max_tokens,
            "system": conversation.system,
            "messages": messages,
        }
        if tools:
            body["tools"] = [
                {"name": wire_name(t.name), "description": t.description, "input_schema": t.describe()["input_schema"]}
                for t in tools
            ]
        return body

    async def plan(self, conversation: Conversation, tools: Sequence[ToolSpec]) -> Plan:
        payload = await post_json(
            self._client,
            "anthropic",
            self._url,
            self.request_body(conversation, tools),
            {"x-api-key": self._key, "anthropic-version": ANTHROPIC_VERSION},
            _error_message,
        )
        if payload.get("type") == "error":
            raise PlannerError(f"anthropic answered an error: {_error_message(payload)}", reason="provider_error")
        content = payload.get("content")
        if not isinstance(content, list):
            raise _malformed("no content list")
        texts: list[str] = []
        calls: list[PlannedCall] = []
        for block in content:
            if not isinstance(block, dict):
                raise _malformed("a content block that is not an object")
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif block.get("type") == "tool_use":
                calls.append(self._call(block))
        usage = payload["usage"] if isinstance(payload.get("usage"), dict) else {}
        return Plan(
            calls=tuple(calls),
            text="".join(texts) if texts else None,
            usage=Usage(_count(usage.get("input_tokens")), _count(usage.get("output_tokens"))),
            stop_reason=payload.get("stop_reason"),
        )

    @staticmethod
    def _call(block: dict[str, Any]) -> PlannedCall:
        call_id, name, given = block.get("id"), block.get("name"), block.get("input")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise _malformed("a tool_use block without id or name")
        wire = {"type": "tool_use", "id": call_id, "name": name, "input": given}
        if not isinstance(given, dict):
            # The next request must echo the block; an object keeps it valid for the provider.
            wire["input"] = {}
            return PlannedCall(call_id, tool_from_wire(name), None, "input must be a JSON object", wire)
        return PlannedCall(call_id, tool_from_wire(name), given, None, wire)

    async def aclose(self) -> None:
        await self._client.aclose()


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
