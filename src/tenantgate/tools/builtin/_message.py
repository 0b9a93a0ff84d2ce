"""The ``message`` tool: send on the session's own channel (issue 5).

For an HTTP session the message becomes an outbound assistant message of the session and a
run event (streamed over SSE). Delivery goes through an :class:`Outbox` that the agent
runtime implements; the tool itself knows nothing of sessions, so it runs only inside a run.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from tenantgate.context import TenantContext
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._spec import Capability, Tool, ToolCall, ToolEffect, tool

__all__ = ["MESSAGE_PACKAGE", "MessageArgs", "MessageSent", "Outbox", "message_tools"]

MESSAGE_PACKAGE = "channel"


class Outbox(Protocol):
    """Delivers a message on the channel of the run ``run_id`` belongs to."""

    async def deliver(
        self, ctx: TenantContext, run_id: uuid.UUID | None, content: str, *, channel: str | None, chat_id: str | None
    ) -> Any: ...


class MessageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=20_000, description="The message text.")
    channel: str | None = Field(None, max_length=63, description="Defaults to the session's own channel.")
    chat_id: str | None = Field(None, max_length=200, description="Defaults to the session's own conversation.")


class MessageSent(BaseModel):
    message_id: str
    channel: str


def message_tools(outbox: Outbox) -> tuple[list[Tool], list[ToolPackage]]:
    """The ``message@v1`` tool over ``outbox``, and the ``channel`` package that offers it."""

    @tool(
        "message@v1",
        description="Send a message to the user on this conversation's channel, before the final reply.",
        effect=ToolEffect.WRITE,
        capabilities={Capability.MESSAGING_OUTBOUND},
        integration="channel",
        output=MessageSent,
    )
    async def message(call: ToolCall, args: MessageArgs) -> MessageSent:
        sent = await outbox.deliver(call.ctx, call.run_id, args.content, channel=args.channel, chat_id=args.chat_id)
        return MessageSent(message_id=str(sent.id), channel=args.channel or "http")

    package = ToolPackage(MESSAGE_PACKAGE, "Messages on the conversation's own channel.", ("message@v1",))
    return [message], [package]
