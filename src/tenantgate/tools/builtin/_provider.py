"""What the API tools share: their endpoints, one way to call a provider, one failure type.

A provider's error reaches the model as a :class:`ToolFailed` whose message says what the
provider said and what to do (reconnect the credential, wait, fix an argument), never as
an httpx traceback. Egress refusals stay :class:`EgressDenied`: they name the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.errors import EgressDenied, TenantgateError
from tenantgate.tools._resources import Credential

__all__ = [
    "ProviderUrls",
    "ToolFailed",
    "call_provider",
    "error_message",
    "fail",
    "json_or_text",
    "meta_field",
    "parse_json",
    "secret_field",
]

_MAX_DETAIL = 300


class ToolFailed(TenantgateError):
    """The provider refused or failed the request; the message says what it said."""

    code = "tool_failed"


@dataclass(frozen=True, kw_only=True)
class ProviderUrls:
    """Where the API tools send requests (settings with the real public defaults)."""

    mode: DeploymentMode = DeploymentMode.SAAS
    brave_search: str = "https://api.search.brave.com"
    whatsapp_graph: str = "https://graph.facebook.com"
    whatsapp_version: str = "v21.0"
    google_sheets: str = "https://sheets.googleapis.com"
    google_token: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
    r8r: str | None = None
    r8r_allowed_nodes: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderUrls:
        return cls(
            mode=settings.mode,
            brave_search=settings.brave_search_url,
            whatsapp_graph=settings.whatsapp_graph_url,
            whatsapp_version=settings.whatsapp_api_version,
            google_sheets=settings.google_sheets_url,
            google_token=settings.google_token_url,
            r8r=settings.r8r_url,
            r8r_allowed_nodes=frozenset(settings.r8r_allowed_nodes),
        )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."


async def call_provider(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    explain: Callable[[httpx.Response], str],
    ok: frozenset[int] = frozenset({200}),
    **kwargs: Any,
) -> httpx.Response:
    """Send one request; return the response if its status is in ``ok``, else raise :class:`ToolFailed`.

    ``explain`` turns an error response into the provider's own words (its error body).
    """
    try:
        response = await client.request(method, url, **kwargs)
    except EgressDenied as exc:
        if exc.rule == "time-limit":
            raise ToolFailed(f"{provider} did not answer in time; try again later.") from None
        raise
    except httpx.TimeoutException:
        raise ToolFailed(f"{provider} did not answer in time; try again later.") from None
    except httpx.HTTPError as exc:
        raise ToolFailed(f"Could not reach {provider}: {_clip(str(exc)) or type(exc).__name__}.") from None
    if response.status_code not in ok:
        fail(response, provider=provider, explain=explain)
    return response


def fail(response: httpx.Response, *, provider: str, explain: Callable[[httpx.Response], str]) -> NoReturn:
    """Raise the :class:`ToolFailed` for an error response: status, the provider's words, what to do."""
    detail = _clip(explain(response))
    status = response.status_code
    if status == 401:
        raise ToolFailed(f"{provider} rejected the credential (401): {detail}. Reconnect the credential.")
    if status == 403:
        raise ToolFailed(f"{provider} refused access (403): {detail}.")
    if status == 429:
        wait = response.headers.get("Retry-After")
        hint = f" Retry after {wait} s." if wait and wait.isdigit() else " Wait before retrying."
        raise ToolFailed(f"{provider} rate-limited the request (429): {detail}.{hint}")
    if status >= 500:
        raise ToolFailed(f"{provider} failed ({status}): {detail}. Try again later.")
    raise ToolFailed(f"{provider} refused the request ({status}): {detail}.")


def parse_json(response: httpx.Response, provider: str) -> Any:
    """The response's JSON, or :class:`ToolFailed` naming the provider if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise ToolFailed(f"{provider} sent a response that is not JSON (status {response.status_code}).") from None


def json_or_text(response: httpx.Response) -> Any:
    """For error explainers: the body as JSON if it is JSON, else its text."""
    try:
        return response.json()
    except ValueError:
        return response.text


def secret_field(credential: Credential, name: str, provider: str) -> str:
    """A required field of a credential's secret, or a clear failure naming what is missing."""
    value = credential.secret.get(name)
    if not value:
        raise ToolFailed(f"The {provider} credential {credential.name!r} has no {name!r}; store it again with one.")
    return value


def meta_field(credential: Credential, name: str, provider: str) -> str:
    """A required text field of a credential's metadata."""
    value = credential.metadata.get(name)
    if not isinstance(value, str) or not value:
        raise ToolFailed(f"The {provider} credential {credential.name!r} has no {name!r} in its metadata.")
    return value


def error_message(body: Any, *keys: str) -> str:
    """The text at ``body[keys[0]][keys[1]]...`` (provider error shapes), or ``''`` if absent."""
    for key in keys:
        if not isinstance(body, Mapping):
            return ""
        body = body.get(key)
    return body if isinstance(body, str) else ""
