"""What an LLM call costs in cost units: a price table by provider and model.

Keys are ``"<provider>:<model>"`` (exact) or ``"<provider>:*"`` (every model of that provider),
where the provider is the vendor that receives the call (the planner's provider, unless the
tenant's policy names another vendor). Prices are cost units per 1000 input and output tokens.

A model the table does not name is charged the *default* price, which is deliberately high
(priced like the dearest models): a model nobody priced must not be free, and a tenant must
not escape its cost budget by choosing one. Costs round up to whole units.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["DEFAULT_PRICE", "ModelPrice", "PriceTable"]

_Per1k = Field(ge=0, le=10**9, allow_inf_nan=False)


class ModelPrice(BaseModel):
    """Cost units per 1000 input tokens and per 1000 output tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_1k: Decimal = _Per1k
    output_per_1k: Decimal = _Per1k

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """Whole cost units for this many tokens, rounded up (a call is never charged less than it cost)."""
        exact = (self.input_per_1k * max(input_tokens, 0) + self.output_per_1k * max(output_tokens, 0)) / 1000
        return math.ceil(exact)


# Like the dearest common models (15 and 75 units per 1k tokens: a unit of $0.001 prices them at
# $15 and $75 per million), so an unpriced model is charged too much rather than nothing.
DEFAULT_PRICE = ModelPrice(input_per_1k=Decimal(15), output_per_1k=Decimal(75))


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by ``provider:model`` and ``provider:*``, and the default for everything else."""

    prices: Mapping[str, ModelPrice]
    default: ModelPrice = DEFAULT_PRICE

    @classmethod
    def parse(
        cls, prices: Mapping[str, Any] | str | None, default: Mapping[str, Any] | str | None = None
    ) -> PriceTable:
        """A table from the settings' JSON (or already-parsed mappings); ValueError names what is wrong."""
        raw = _json(prices, "model_prices") or {}
        if not isinstance(raw, Mapping):
            raise ValueError('model_prices is a JSON object: {"<provider>:<model>": {"input_per_1k": n, ...}}')
        table: dict[str, ModelPrice] = {}
        for key, value in raw.items():
            provider, sep, model = str(key).partition(":")
            if not sep or not provider or not model:
                raise ValueError(f'model_prices: key {key!r} is "<provider>:<model>" or "<provider>:*"')
            table[f"{provider}:{model}"] = _price(value, f"model_prices[{key!r}]")
        raw_default = _json(default, "model_default_price")
        fallback = DEFAULT_PRICE if raw_default is None else _price(raw_default, "model_default_price")
        return cls(table, fallback)

    def price(self, provider: str | None, model: str | None) -> ModelPrice:
        """The price of ``model`` at ``provider``: exact, else the provider's ``*``, else the default."""
        for key in (f"{provider}:{model}", f"{provider}:*"):
            found = self.prices.get(key)
            if found is not None:
                return found
        return self.default


def _json(value: Mapping[str, Any] | str | None, name: str) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return None
    try:
        return json.loads(value, parse_float=Decimal)  # 0.15 stays exactly 0.15
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc.msg} (at {exc.pos})") from None


def _price(value: Any, where: str) -> ModelPrice:
    try:
        return ModelPrice.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'price'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{where}: {problems}") from None
