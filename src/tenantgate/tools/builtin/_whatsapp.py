"""The ``whatsapp`` package: ``whatsapp_send`` and ``whatsapp_reply`` through the WhatsApp Cloud API.

``whatsapp_send@v1``: a free-form text, or an approved template with body parameters, to
any number. High impact: a message cannot be unsent, so a human confirms each one.

``whatsapp_reply@v1``: the WhatsApp channel's answer to an inbound message, sent as a
reply to it (Graph API ``context.message_id``) from the number it came in on. Channel-only:
the platform's channel proposes it with the recipient taken from the verified inbound
message; no planner and no API client can, so it is not high-impact.

The tenant's credential (``whatsapp``) holds ``access_token``; its metadata holds
``phone_number_id``, the sending number.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool
from tenantgate.tools.builtin._provider import (
    ProviderUrls,
    ToolFailed,
    call_provider,
    json_or_text,
    meta_field,
    parse_json,
    secret_field,
)

__all__ = ["REPLY_TOOL", "whatsapp_tools"]

REPLY_TOOL = "whatsapp_reply@v1"

_PROVIDER = "WhatsApp"
CREDENTIAL = "whatsapp"


class SendArgs(BaseModel):
    to: str = Field(pattern=r"^\+?[1-9][0-9]{6,14}$", description="Recipient phone number, E.164 (+15551234567).")
    message: str | None = Field(None, min_length=1, max_length=4096, description="A free-form text message.")
    template: str | None = Field(
        None, pattern=r"^[a-z0-9_]{1,512}$", description="Name of an approved message template."
    )
    template_params: list[str] = Field(default_factory=list, max_length=50, description="The template's {{n}} values.")
    language: str = Field("en_US", pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="The template's language code.")

    @model_validator(mode="after")
    def _one_kind(self) -> SendArgs:
        if (self.message is None) == (self.template is None):
            raise ValueError("give either message (free-form text) or template (an approved template), not both")
        if self.template_params and self.template is None:
            raise ValueError("template_params need a template")
        return self


class ReplyArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=r"^\+?[1-9][0-9]{6,14}$", description="The sender of the inbound message, E.164.")
    reply_to: str = Field(min_length=1, max_length=200, description="The inbound message's id (wamid...).")
    phone_number_id: str = Field(pattern=r"^[0-9]{1,64}$", description="Our number the message came in on.")
    message: str = Field(min_length=1, max_length=4096, description="The reply text.")


class SendOut(BaseModel):
    message_id: str
    to: str
    wa_id: str | None


def _body(args: SendArgs) -> dict[str, Any]:
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": args.to}
    if args.message is not None:
        body |= {"type": "text", "text": {"body": args.message}}
        return body
    template: dict[str, Any] = {"name": args.template, "language": {"code": args.language}}
    if args.template_params:
        parameters = [{"type": "text", "text": value} for value in args.template_params]
        template["components"] = [{"type": "body", "parameters": parameters}]
    return body | {"type": "template", "template": template}


def _graph_error(response: httpx.Response) -> str:
    # {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}
    body = json_or_text(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return body if isinstance(body, str) and body else response.reason_phrase
    parts = [str(error.get("message") or "no message")]
    codes = [
        f"code {error['code']}" if "code" in error else "",
        f"subcode {error['error_subcode']}" if "error_subcode" in error else "",
    ]
    detail = ", ".join(c for c in codes if c)
    if detail:
        parts.append(f"({detail})")
    if error.get("fbtrace_id"):
        parts.append(f"fbtrace_id {error['fbtrace_id']}")
    return " ".join(parts)


def _sent(body: Any, to: str) -> SendOut:
    messages = body.get("messages") if isinstance(body, dict) else None
    first = messages[0] if isinstance(messages, list) and messages else None
    message_id = first.get("id") if isinstance(first, dict) else None
    if not isinstance(message_id, str):
        raise ToolFailed(f"{_PROVIDER} answered without a message id; the message may or may not have been sent.")
    contacts = body.get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict) else {}
    wa_id = contact.get("wa_id")
    return SendOut(message_id=message_id, to=to, wa_id=wa_id if isinstance(wa_id, str) else None)


def _reply_body(args: ReplyArgs) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": args.to,
            "context": {"message_id": args.reply_to}, "type": "text", "text": {"body": args.message}}  # fmt: skip


def whatsapp_tools(urls: ProviderUrls) -> list[Tool | ToolPackage]:
    """``whatsapp_send@v1``, ``whatsapp_reply@v1`` and the ``whatsapp`` package."""
    base = f"{urls.whatsapp_graph.rstrip('/')}/{urls.whatsapp_version}"

    @tool(
        "whatsapp_send@v1",
        description="Send a WhatsApp message (free-form text, or an approved template) to a phone number.",
        effect=ToolEffect.EXTERNAL,
        capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS, Capability.MESSAGING_OUTBOUND},
        output=SendOut,
        high_impact=True,
        integration="whatsapp",
    )
    async def whatsapp_send(call: ToolCall, args: SendArgs) -> SendOut:
        credential = await call.credential(CREDENTIAL)
        token = secret_field(credential, "access_token", _PROVIDER)
        phone_number_id = meta_field(credential, "phone_number_id", _PROVIDER)
        if not phone_number_id.isdigit():
            raise ToolFailed(f"The {_PROVIDER} credential's phone_number_id must be digits.")
        async with call.http() as client:
            response = await call_provider(
                client, "POST", f"{base}/{phone_number_id}/messages", provider=_PROVIDER, explain=_graph_error,
                json=_body(args), headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            return _sent(parse_json(response, _PROVIDER), args.to)

    @tool(
        REPLY_TOOL,
        description="Answer an inbound WhatsApp message, from the number it came in on, to its sender.",
        effect=ToolEffect.EXTERNAL,
        capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS, Capability.MESSAGING_OUTBOUND},
        output=SendOut,
        integration="whatsapp",
        channel_only=True,
    )
    async def whatsapp_reply(call: ToolCall, args: ReplyArgs) -> SendOut:
        credential = await call.credential(CREDENTIAL)
        token = secret_field(credential, "access_token", _PROVIDER)
        # The reply leaves from the number the customer wrote to, or not at all: another number's
        # token must not answer this conversation.
        if meta_field(credential, "phone_number_id", _PROVIDER) != args.phone_number_id:
            raise ToolFailed(f"The {_PROVIDER} credential is for another phone number than this conversation's.")
        async with call.http() as client:
            response = await call_provider(
                client, "POST", f"{base}/{args.phone_number_id}/messages", provider=_PROVIDER, explain=_graph_error,
                json=_reply_body(args), headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            return _sent(parse_json(response, _PROVIDER), args.to)

    package = ToolPackage(
        "whatsapp", "Send WhatsApp messages through the WhatsApp Cloud API.", (whatsapp_send.name, whatsapp_reply.name)
    )
    return [whatsapp_send, whatsapp_reply, package]
