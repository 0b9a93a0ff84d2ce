"""WhatsApp Cloud API (Graph API): ``POST /{version}/{phone_number_id}/messages`` with a bearer token."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

HOST = "graph.facebook.test"
VERSION = "v21.0"
ACCESS_TOKEN = "EAAG-fake-whatsapp-token"
PHONE_NUMBER_ID = "106540352242922"


def graph_error(status: int, message: str, type_: str, code: int, subcode: int | None = None) -> Reply:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return Reply(status, {"error": error}, {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'}
                 if status == 401 else {})  # fmt: skip


def invalid_token() -> Reply:
    return graph_error(401, "Error validating access token: Session has expired on Friday, 01-Nov-24 10:00:00 PDT.",
                       "OAuthException", 190, 463)  # fmt: skip


def rate_limited() -> Reply:
    return graph_error(429, "(#130429) Rate limit hit", "OAuthException", 130429)


def outside_window() -> Reply:
    # A free-form message to someone who has not written in the last 24 hours.
    return graph_error(400, "(#131047) Re-engagement message", "OAuthException", 131047)


class FakeWhatsApp:
    def __init__(self) -> None:
        self.server = FakeServer(self.handle)
        self.override: Reply | None = None
        self.sent: list[dict[str, Any]] = []

    async def handle(self, request: Request) -> Reply:
        if self.override is not None:
            return self.override
        if request.method != "POST" or request.path != f"/{VERSION}/{PHONE_NUMBER_ID}/messages":
            return graph_error(400, "Unsupported post request.", "GraphMethodException", 100, 33)
        if request.bearer() != ACCESS_TOKEN:
            return invalid_token()
        body = request.json()
        if body.get("messaging_product") != "whatsapp" or body.get("type") not in ("text", "template"):
            return graph_error(400, "(#100) Invalid parameter", "OAuthException", 100)
        self.sent.append(body)
        wa_id = body["to"].lstrip("+")
        message_id = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        return Reply(200, {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": wa_id}],
                           "messages": [{"id": message_id}]})  # fmt: skip
