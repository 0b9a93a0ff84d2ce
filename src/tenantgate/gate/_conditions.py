"""Typed conditions on an argument path, so a policy can bind *what* a tool may be called with.

``{"path": "to", "op": "one_of", "value": ["+4930...", "+4940..."]}`` lets ``whatsapp_send``
reach only known contacts; ``{"path": "url", "op": "url_domain", "value": ["example.com",
"*.example.org"]}`` keeps ``web_fetch`` on listed sites. A hijacked planner then cannot send
data anywhere the tenant never approved. Conditions are validated when a policy is
written and compiled to plain predicates for the hot path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ArgCondition", "ConditionError", "Predicate", "compile_condition"]

Op = Literal["equals", "one_of", "prefix", "url_domain", "range", "length"]
_MISSING = object()


class ConditionError(Exception):
    """A condition could not be evaluated against these arguments (missing path, wrong type)."""


class ArgCondition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
    op: Op
    value: Any

    @model_validator(mode="after")
    def _value_fits_op(self) -> ArgCondition:
        v = self.value
        if self.op == "equals" and not isinstance(v, str | int | float | bool):
            raise ValueError("equals compares with a string, number or boolean")
        if self.op == "one_of" and not (isinstance(v, list) and v and all(isinstance(x, str | int) for x in v)):
            raise ValueError("one_of needs a non-empty list of strings or integers")
        if self.op == "prefix" and not (isinstance(v, str) and v):
            raise ValueError("prefix needs a non-empty string")
        if self.op == "url_domain":
            if not (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
                raise ValueError("url_domain needs a non-empty list of hosts (exact, or *.suffix)")
            for host in v:
                bare = host.removeprefix("*.")
                if not bare or "/" in bare or ":" in bare or "*" in bare or bare != bare.lower():
                    raise ValueError(f"url_domain: {host!r} is not a lowercase host or *.suffix")
        if self.op in ("range", "length"):
            if not isinstance(v, dict) or not v or set(v) - {"min", "max"}:
                raise ValueError(f"{self.op} needs {{'min': ..., 'max': ...}} (either or both)")
            for bound in v.values():
                if not isinstance(bound, int | float) or isinstance(bound, bool) or not math.isfinite(bound):
                    raise ValueError(f"{self.op} bounds are finite numbers")
            if "min" in v and "max" in v and v["min"] > v["max"]:
                raise ValueError(f"{self.op}: min is greater than max")
        return self


Predicate = Callable[[dict[str, Any]], bool]


def _lookup(arguments: dict[str, Any], parts: tuple[str, ...]) -> Any:
    node: Any = arguments
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _host_matches(host: str, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


# Backslashes, whitespace and control characters: URL parsers and HTTP clients disagree on them.
_AMBIGUOUS_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")


def _url_host(value: Any) -> str:
    if not isinstance(value, str):
        raise ConditionError("url_domain applies to a string URL")
    if _AMBIGUOUS_IN_URL.search(value):
        raise ConditionError("URL contains characters resolvers and parsers disagree on")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConditionError("url_domain applies to an http(s) URL with a host")
    return parts.hostname.rstrip(".").lower()


def compile_condition(condition: ArgCondition) -> Predicate:
    """A predicate over the validated arguments; raises :class:`ConditionError` when it cannot judge."""
    parts = tuple(condition.path.split("."))
    op, v = condition.op, condition.value

    def value_of(arguments: dict[str, Any]) -> Any:
        found = _lookup(arguments, parts)
        if found is _MISSING:
            raise ConditionError(f"argument {condition.path!r} is missing")
        return found

    if op == "equals":
        # Strict: 1 does not equal True, nor 1.0.
        return lambda a: _same(value_of(a), v)
    if op == "one_of":
        allowed = frozenset(v)
        return lambda a: _hashable(value_of(a)) in allowed
    if op == "prefix":
        return lambda a: _as_str(value_of(a)).startswith(v)
    if op == "url_domain":
        hosts = tuple(v)
        return lambda a: _host_matches(_url_host(value_of(a)), hosts)
    low, high = v.get("min", -math.inf), v.get("max", math.inf)
    if op == "range":
        return lambda a: low <= _as_number(value_of(a)) <= high
    return lambda a: low <= _length(value_of(a)) <= high


def _same(value: Any, expected: Any) -> bool:
    return type(value) is type(expected) and bool(value == expected)


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict | bool | float):
        raise ConditionError("one_of compares with a single string or integer")
    return value


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ConditionError("prefix applies to a string")
    return value


def _as_number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConditionError("range applies to a number")
    # NaN compares false with everything: it would slip past a forbid. Infinities are not
    # amounts either. Integers stay integers: float() would overflow on a huge one.
    if isinstance(value, float) and not math.isfinite(value):
        raise ConditionError("range applies to a finite number")
    return value


def _length(value: Any) -> int:
    if not isinstance(value, str | list | dict):
        raise ConditionError("length applies to a string, list or object")
    return len(value)
