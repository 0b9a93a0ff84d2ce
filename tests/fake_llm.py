"""Fake model providers on loopback that speak the real wire formats, and the doubles around them.

``FakeProvider`` is a minimal HTTP/1.1 server on 127.0.0.1 that records every request (method,
path, headers, JSON body) and answers from a queue of canned responses built by the helpers
below, which follow the providers' documented shapes: OpenAI Chat Completions
(``choices[0].message.tool_calls``, ``finish_reason``, ``usage``) and Anthropic Messages
(``content`` blocks, ``stop_reason``, ``usage``, ``{"type": "error", ...}``).
The resolver table and the loopback-only dialer are ``tenantgate.demo``'s ``HostTable`` and
``LoopbackOnly``, which fail the test if anything but 127.0.0.1 is dialled.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests", 500: "Internal Server Error",
            529: "Overloaded"}  # fmt: skip


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Canned:
    status: int
    body: Any
    delay_s: float = 0.0
    gate: asyncio.Event | None = None  # answer only once this is set


@dataclass
class FakeProvider:
    received: list[Received] = field(default_factory=list)
    replies: deque[Canned] = field(default_factory=deque)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def reset(self) -> None:
        self.received.clear()
        self.replies.clear()

    def reply(self, body: Any, status: int = 200, *, delay_s: float = 0.0, gate: asyncio.Event | None = None) -> None:
        self.replies.append(Canned(status, body, delay_s, gate))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, path, headers, json.loads(raw) if raw else None))
            canned = self.replies.popleft() if self.replies else Canned(500, {"error": {"message": "no canned reply"}})
            if canned.gate is not None:
                await canned.gate.wait()
            if canned.delay_s:
                await asyncio.sleep(canned.delay_s)
            payload = json.dumps(canned.body).encode()
            writer.write(
                f"HTTP/1.1 {canned.status} {_REASONS.get(canned.status, 'Status')}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
                "connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # stopped while holding back an answer: end quietly, the test is over
        finally:
            writer.close()
            self._tasks.discard(task)


# --- response bodies as the providers document them --------------------------------------


def openai_calls(*calls: tuple[str, str, str], prompt: int = 10, completion: int = 5) -> dict[str, Any]:
    """A Chat Completions answer with tool calls ``(id, function name, arguments JSON string)``."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": 1_764_500_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": None, "refusal": None,
            "tool_calls": [{"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls],
        }}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }  # fmt: skip


def openai_text(text: str, *, prompt: int = 10, completion: int = 5) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": 1_764_500_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": text, "refusal": None}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }  # fmt: skip


def openai_error(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_message(*blocks: dict[str, Any], stop: str, inp: int = 12, out: int = 6) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": list(blocks), "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": inp, "output_tokens": out},
    }  # fmt: skip


def tool_use(call_id: str, name: str, given: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": given}


def text_block(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}
