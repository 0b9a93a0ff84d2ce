"""The ``google_sheets`` package: read, append and update cell values (Sheets API v4).

The tenant's OAuth credential (``google_sheets``) holds ``access_token``, ``refresh_token``,
``client_id``, ``client_secret`` and ``expires_at`` (Unix seconds). An access token that
has expired, or that Google rejects with 401, is refreshed once at the token endpoint and
the new one is written back sealed (``call.store_refreshed``) before the request is retried.

Values are always sent with ``valueInputOption=RAW``: a model-written ``=IMPORTXML(...)``
stays text, so a formula cannot fetch or leak anything from Google's side of the door.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, Field, model_validator

from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import Credential, ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool
from tenantgate.tools.builtin._provider import (
    ProviderUrls,
    ToolFailed,
    call_provider,
    error_message,
    fail,
    json_or_text,
    parse_json,
    secret_field,
)

__all__ = ["sheets_tools"]

_PROVIDER = "Google Sheets"
_TOKEN_PROVIDER = "Google OAuth"  # noqa: S105 - a provider name, not a secret
CREDENTIAL = "google_sheets"
_EARLY_S = 60  # refresh a token this close to expiry: it could expire in flight

Cell = str | int | float | bool | None


class Action(StrEnum):
    READ = "read"
    APPEND = "append"
    UPDATE = "update"


class SheetsArgs(BaseModel):
    spreadsheet_id: str = Field(pattern=r"^[A-Za-z0-9_-]{10,128}$")
    action: Action
    range: str = Field(min_length=1, max_length=200, description="A1 notation, e.g. Sheet1!A1:C10.")
    values: list[list[Cell]] | None = Field(None, max_length=10_000, description="Rows of cells (append, update).")

    @model_validator(mode="after")
    def _values_for_writes(self) -> SheetsArgs:
        if self.action is Action.READ and self.values is not None:
            raise ValueError("read takes no values")
        if self.action is not Action.READ and not self.values:
            raise ValueError(f"{self.action.value} needs values: a list of rows")
        return self


class SheetsOut(BaseModel):
    action: Action
    range: str
    values: list[list[Any]] | None = None
    updated_range: str | None = None
    updated_rows: int | None = None
    updated_cells: int | None = None


def _google_error(response: httpx.Response) -> str:
    # {"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED"}}
    body = json_or_text(response)
    message, status = error_message(body, "error", "message"), error_message(body, "error", "status")
    if message or status:
        return f"{status}: {message}" if status and message else status or message
    return body if isinstance(body, str) and body else response.reason_phrase


def _token_error(response: httpx.Response) -> str:
    # RFC 6749 §5.2: {"error": "invalid_grant", "error_description": "..."}
    body = json_or_text(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        description = body.get("error_description")
        return f"{body['error']}: {description}" if isinstance(description, str) else body["error"]
    return body if isinstance(body, str) and body else response.reason_phrase


def _expired(secret: dict[str, str], now: float) -> bool:
    raw = secret.get("expires_at", "")
    try:
        return float(raw) <= now + _EARLY_S
    except ValueError:
        return True  # unknown expiry: refresh rather than send a token that may be dead


class _Session:
    """One call's OAuth state: the current secret, refreshed at most once."""

    def __init__(self, call: ToolCall, credential: Credential, token_url: str, clock: Callable[[], float]) -> None:
        self.call = call
        self.credential = credential
        self.secret = dict(credential.secret)
        self.token_url = token_url
        self.clock = clock
        self.refreshed = False

    async def refresh(self, client: httpx.AsyncClient) -> None:
        if self.refreshed:
            raise ToolFailed(f"{_PROVIDER} rejected a freshly refreshed token; reconnect the Google account.")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": secret_field(self.credential, "refresh_token", _PROVIDER),
            "client_id": secret_field(self.credential, "client_id", _PROVIDER),
            "client_secret": secret_field(self.credential, "client_secret", _PROVIDER),
        }
        response = await call_provider(
            client, "POST", self.token_url, provider=_TOKEN_PROVIDER, explain=_token_error, data=form,
            ok=frozenset({200}),
        )  # fmt: skip
        body = parse_json(response, _TOKEN_PROVIDER)
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in", 3600) if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise ToolFailed(f"{_TOKEN_PROVIDER} answered the refresh without an access token.")
        new = self.secret | {"access_token": token, "expires_at": str(int(self.clock() + expires_in))}
        if isinstance(body.get("refresh_token"), str):  # Google may rotate it
            new["refresh_token"] = body["refresh_token"]
        await self.call.store_refreshed(self.credential, new)
        self.secret = new
        self.refreshed = True

    async def send(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
        if _expired(self.secret, self.clock()):
            await self.refresh(client)
        while True:
            headers = {"Authorization": f"Bearer {self.secret.get('access_token', '')}", "Accept": "application/json"}
            response = await call_provider(
                client, method, url, provider=_PROVIDER, explain=_google_error, headers=headers,
                ok=frozenset({200, 401}), **kwargs,
            )  # fmt: skip
            if response.status_code == 401:
                if self.refreshed:
                    fail(response, provider=_PROVIDER, explain=_google_error)
                await self.refresh(client)  # revoked early, or a clock that disagrees: once
                continue
            return parse_json(response, _PROVIDER)


def sheets_tools(urls: ProviderUrls, *, clock: Callable[[], float] = time.time) -> list[Tool | ToolPackage]:
    """``google_sheets@v1`` and the ``google_sheets`` package."""
    base = urls.google_sheets.rstrip("/") + "/v4/spreadsheets"

    @tool(
        "google_sheets@v1",
        description="Read, append or update cell values of a Google Sheets spreadsheet (A1 ranges).",
        effect=ToolEffect.WRITE,
        capabilities={Capability.NET_EGRESS, Capability.CREDENTIALS},
        output=SheetsOut,
        integration="google_sheets",
    )
    async def google_sheets(call: ToolCall, args: SheetsArgs) -> SheetsOut:
        session = _Session(call, await call.credential(CREDENTIAL), urls.google_token, clock)
        target = f"{base}/{args.spreadsheet_id}/values/{quote(args.range, safe='!:$')}"
        async with call.http() as client:
            if args.action is Action.READ:
                body = await session.send(client, "GET", target)
                return _read(args, body)
            payload = {"range": args.range, "majorDimension": "ROWS", "values": args.values}
            if args.action is Action.APPEND:
                body = await session.send(
                    client, "POST", f"{target}:append", params={"valueInputOption": "RAW"}, json=payload
                )
                updates = body.get("updates") if isinstance(body, dict) else None
                return _written(args, updates)
            body = await session.send(client, "PUT", target, params={"valueInputOption": "RAW"}, json=payload)
            return _written(args, body)

    package = ToolPackage("google_sheets", "Read and write Google Sheets.", (google_sheets.name,))
    return [google_sheets, package]


def _read(args: SheetsArgs, body: Any) -> SheetsOut:
    values = body.get("values", []) if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise ToolFailed(f"{_PROVIDER} sent values of an unexpected shape.")
    shown = body.get("range")
    return SheetsOut(action=args.action, range=shown if isinstance(shown, str) else args.range, values=values)


def _written(args: SheetsArgs, body: Any) -> SheetsOut:
    if not isinstance(body, dict) or not isinstance(body.get("updatedRange"), str):
        raise ToolFailed(f"{_PROVIDER} answered the {args.action.value} without saying what it updated.")

    def count(key: str) -> int | None:
        value = body.get(key)
        return value if isinstance(value, int) else None

    return SheetsOut(
        action=args.action,
        range=args.range,
        updated_range=body["updatedRange"],
        updated_rows=count("updatedRows"),
        updated_cells=count("updatedCells"),
    )
