"""The OpenAI-compatible Chat Completions planner (OpenAI, vLLM, Ollama, llama.cpp server, ...).

Wire format: ``POST {base_url}/chat/completions`` with ``messages``, ``tools`` and
``tool_choice``; the answer's ``choices[0].message`` holds ``content`` and/or ``tool_calls``
(``{id, type: "function", function: {name, arguments: "<json string>"}}``); results go back
as ``{"role": "tool", "tool_call_id", "content"}``; ``usage`` has prompt and completion tokens.
"""

from __future__ import annotations

import json
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

__all__ = ["OpenAIPlanner"]


def _error_message(payload: Any) -> str | None:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


def _malformed(what: str) -> PlannerError:
    return PlannerError(f"openai answered with a malformed response: {what}.", reason="malformed_response")


class OpenAIPlanner:
    """Chat Completions with tool calling, through an egress-checked client."""

    name = "openai"

    def __init__(self, *, client: httpx.AsyncClient, base_url: str, model: str, api_key: str, vendor: str) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._key = api_key
        self.model: str | None = model
        self.vendor: str | None = vendor

    def request_body(self, conversation: Conversation, tools: Sequence[ToolSpec]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [{"role": "system", "content": conversation.system}]
        for turn in conversation.turns:
            if isinstance(turn, UserTurn):
                messages.append({"role": "user", "content": turn.text})
            elif isinstance(turn, AssistantTurn):
                message: dict[str, Any] = {"role": "assistant", "content": turn.text}
                if turn.calls:
                    message["tool_calls"] = [c.wire for c in turn.calls]
                messages.append(message)
            elif isinstance(turn, ToolResults):
                messages.extend({"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in turn.results)
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if tools:
            body["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": wire_name(t.name),
                        "description": t.description,
                        "parameters": t.describe()["input_schema"],
                    },
                }
                for t in tools
            ]
            body["tool_choice"] = "auto"
        return body

    async def plan(self, conversation: Conversation, tools: Sequence[ToolSpec]) -> Plan:
        payload = await post_json(
            self._client,
            "openai",
            self._url,
            self.request_body(conversation, tools),
            {"Authorization": f"Bearer {self._key}"},
            _error_message,
        )
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _malformed("no choices")
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise _malformed("no message")
        text = message.get("content")
        if text is not None and not isinstance(text, str):
            raise _malformed("content is not text")
        raw_calls = message.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise _malformed("tool_calls is not a list")
        calls = tuple(self._call(raw) for raw in raw_calls)
        usage = payload["usage"] if isinstance(payload.get("usage"), dict) else {}
        return Plan(
            calls=calls,
            text=text,
            usage=Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))),
            stop_reason=choices[0].get("finish_reason"),
        )

    @staticmethod
    def _call(raw: Any) -> PlannedCall:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not isinstance(raw.get("function"), dict):
            raise _malformed("a tool call without id or function")
        function = raw["function"]
        name = function.get("name")
        if not isinstance(name, str):
            raise _malformed("a tool call without a function name")
        wire = {"id": raw["id"], "type": "function", "function": {"name": name, "arguments": function.get("arguments")}}
        arguments = function.get("arguments")
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError as exc:
            return PlannedCall(raw["id"], tool_from_wire(name), None, f"arguments are not valid JSON: {exc}", wire)
        if not isinstance(parsed, dict):
            return PlannedCall(raw["id"], tool_from_wire(name), None, "arguments must be a JSON object", wire)
        return PlannedCall(raw["id"], tool_from_wire(name), parsed, None, wire)

    async def aclose(self) -> None:
        await self._client.aclose()


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0
