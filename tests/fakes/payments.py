"""A Stripe-like payments API: ``POST /v1/charges``, one charge per ``Idempotency-Key``.

A replayed key returns the first charge (with ``Idempotent-Replayed: true``), as Stripe does;
``effects`` counts the charges made per key: the ground truth of "exactly once".
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.server import Reply, Request

__all__ = ["FakePayments"]


class FakePayments:
    """``POST /v1/charges``: one charge per Idempotency-Key; a replay returns the first charge."""

    def __init__(self, on_effect: Callable[[], None] | None = None) -> None:
        self.charges: dict[str, dict[str, Any]] = {}
        self.effects: dict[str, int] = {}
        self.on_effect = on_effect

    async def __call__(self, request: Request) -> Reply:
        key = request.headers.get("idempotency-key")
        if key is None:
            return Reply(400, {"error": {"type": "invalid_request_error", "message": "Idempotency-Key required"}})
        if key in self.charges:
            return Reply(200, self.charges[key], {"Idempotent-Replayed": "true"})
        self.effects[key] = self.effects.get(key, 0) + 1
        self.charges[key] = {"id": "ch_" + uuid.uuid4().hex[:24], "object": "charge", **request.json()}
        if self.on_effect is not None:
            self.on_effect()  # the effect happened; whoever asked may never hear about it
        return Reply(200, self.charges[key])
