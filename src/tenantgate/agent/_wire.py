"""What the HTTP planners share: one POST through the egress door, errors turned into PlannerError."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tenantgate.agent._planner import PlannerError

__all__ = ["post_json"]

_MAX_ERROR_TEXT = 300


async def post_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    error_message: Callable[[Any], str | None],
) -> dict[str, Any]:
    """POST ``body``; the decoded JSON object of a 2xx answer, or a PlannerError that says what happened.

    Egress refusals (EgressDenied) pass through unchanged: they are the policy speaking, not the provider.
    """
    try:
        response = await client.post(url, json=dict(body), headers=dict(headers))
    except httpx.TimeoutException:
        raise PlannerError(f"{provider} did not answer in time.", reason="timeout") from None
    except httpx.HTTPError as exc:
        raise PlannerError(f"{provider} could not be reached ({type(exc).__name__}).", reason="unreachable") from None
    try:
        payload = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        payload = None
    if not response.is_success:
        detail = error_message(payload) if payload is not None else None
        text = (detail or response.reason_phrase or "no detail")[:_MAX_ERROR_TEXT]
        raise PlannerError(
            f"{provider} answered {response.status_code}: {text}", reason="provider_error", status=response.status_code
        )
    if not isinstance(payload, dict):
        raise PlannerError(
            f"{provider} answered with something that is not a JSON object.", reason="malformed_response"
        )
    return payload
