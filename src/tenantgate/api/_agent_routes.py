"""Sessions, messages and runs over HTTP: one user message runs one agent turn.

``POST /v1/sessions/{id}/messages`` answers with the reply and the run id, or, with
``Accept: text/event-stream``, streams the run's events as server-sent events while it runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from tenantgate.agent import LiveRun, MessageInfo, RunEvent, RunInfo, SessionInfo
from tenantgate.api._deps import Caller, ServicesDep
from tenantgate.api._errors import ERROR_RESPONSES, error_responses

router = APIRouter(prefix="/v1", tags=["agent"], responses=ERROR_RESPONSES)


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=200)


class SessionOut(BaseModel):
    id: uuid.UUID
    channel: str
    title: str | None
    created_by: uuid.UUID
    created_at: datetime


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=100_000)


class MessageOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID | None
    role: str
    kind: str
    content: str
    created_at: datetime


class MessageList(BaseModel):
    session_id: uuid.UUID
    messages: list[MessageOut]


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int


class ErrorOut(BaseModel):
    code: str
    message: str | None


class TurnOut(BaseModel):
    run_id: uuid.UUID
    session_id: uuid.UUID
    status: str
    reply: str | None
    steps: int
    usage: UsageOut
    confirmation_id: uuid.UUID | None
    error: ErrorOut | None


class EventOut(BaseModel):
    seq: int
    kind: str
    data: dict[str, Any]
    occurred_at: datetime
    content: str | None = Field(None, description="Raw tool content, when asked for with ?content=true.")


class RunOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    started_by: uuid.UUID
    started_by_kind: str
    execution_id: uuid.UUID = Field(description="The AI execution principal the run acted as.")
    planner: str
    model: str | None
    status: str
    error_code: str | None
    reason: str | None
    steps: int
    usage: UsageOut
    confirmation_id: uuid.UUID | None
    started_at: datetime
    finished_at: datetime | None
    events: list[EventOut]


def _session(s: SessionInfo) -> SessionOut:
    return SessionOut(id=s.id, channel=s.channel, title=s.title, created_by=s.created_by, created_at=s.created_at)


def _message(m: MessageInfo) -> MessageOut:
    return MessageOut(id=m.id, run_id=m.run_id, role=m.role, kind=m.kind, content=m.content, created_at=m.created_at)


def _event(e: RunEvent, content: bool) -> EventOut:
    return EventOut(
        seq=e.seq, kind=e.kind, data=e.data, occurred_at=e.occurred_at, content=e.content if content else None
    )


def _run(r: RunInfo, content: bool = False) -> RunOut:
    return RunOut(
        id=r.id, session_id=r.session_id, started_by=r.started_by, started_by_kind=r.started_by_kind,
        execution_id=r.execution_id, planner=r.planner, model=r.model, status=r.status.value,
        error_code=r.error_code, reason=r.reason, steps=r.steps,
        usage=UsageOut(input_tokens=r.input_tokens, output_tokens=r.output_tokens),
        confirmation_id=r.confirmation_id, started_at=r.started_at, finished_at=r.finished_at,
        events=[_event(e, content) for e in r.events],
    )  # fmt: skip


def _sse(event: RunEvent) -> str:
    payload = {"run_id": str(event.run_id), "seq": event.seq, "kind": event.kind, "data": event.data,
               "occurred_at": event.occurred_at.isoformat()}  # fmt: skip
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def _stream(live: LiveRun) -> AsyncIterator[str]:
    async for event in live.follow():
        yield _sse(event)


@router.post("/sessions", response_model=SessionOut, status_code=201)
async def create_session(body: SessionCreate, ctx: Caller, services: ServicesDep) -> SessionOut:
    """A new conversation on the HTTP channel, in the caller's tenant."""
    return _session(await services.runtime.sessions.create(ctx, title=body.title))


@router.get("/sessions/{session_id}/messages", response_model=MessageList, responses=error_responses(404))
async def list_messages(session_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> MessageList:
    """The session's messages, oldest first: the user's, the replies, and what the message tool sent."""
    found = await services.runtime.sessions.messages(ctx, session_id)
    return MessageList(session_id=session_id, messages=[_message(m) for m in found])


@router.post(
    "/sessions/{session_id}/messages",
    response_model=TurnOut,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The reply, or the run's events (SSE)"},
        **error_responses(404, 502),
    },
)
async def post_message(
    session_id: uuid.UUID, body: MessageIn, request: Request, ctx: Caller, services: ServicesDep
) -> Any:
    """Run one agent turn on the user's message; answer with the reply and the run id, or stream its events."""
    runtime = services.runtime
    if "text/event-stream" in request.headers.get("accept", ""):
        live = await runtime.start_turn(ctx, session_id, body.content)
        return StreamingResponse(
            _stream(live),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Run-ID": str(live.run_id)},
        )
    result = await runtime.run_turn(ctx, session_id, body.content)
    return JSONResponse(result.as_json(), headers={"X-Run-ID": str(result.run_id)})


@router.get("/runs/{run_id}", response_model=RunOut, responses=error_responses(404))
async def get_run(run_id: uuid.UUID, ctx: Caller, services: ServicesDep, content: bool = False) -> RunOut:
    """The run (who started it, as which AI execution, status, token usage, timings) and its events in order."""
    return _run(await services.runtime.runs.get(ctx, run_id), content)


@router.post("/runs/{run_id}/cancel", response_model=RunOut, responses=error_responses(404))
async def cancel_run(run_id: uuid.UUID, ctx: Caller, services: ServicesDep) -> RunOut:
    """Stop a running run; it is recorded as cancelled. A finished run is returned unchanged."""
    return _run(await services.runtime.cancel(ctx, run_id))
