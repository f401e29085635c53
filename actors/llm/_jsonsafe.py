"""Distrust for JSON that came from a model or a provider: numbers that are not JSON (NaN,
Infinity, -Infinity, and overflowing literals such as 1e400), nesting too deep to handle
safely, and strings that are not valid Unicode (lone surrogates, which cannot be encoded)."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = ["MAX_DEPTH", "NotJSONError", "TooDeepError", "problem", "strict_loads"]

MAX_DEPTH = 64
"""Deepest nesting of objects/arrays accepted in tool-call arguments."""


class NotJSONError(ValueError):
    """The text parsed only by accepting something JSON does not allow."""


class TooDeepError(NotJSONError):
    """The text nests arrays/objects too deeply to parse."""


def _reject_constant(name: str) -> Any:
    raise NotJSONError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotJSONError(f"{text[:40]} is out of range for a number")
    return value


def strict_loads(text: str | bytes) -> Any:
    """`json.loads` that refuses NaN/Infinity/-Infinity and overflowing numbers, and turns a
    too-deep nesting (RecursionError) into `TooDeepError`. Invalid JSON raises
    `json.JSONDecodeError` as usual."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise TooDeepError("nested too deeply") from None


def problem(
    value: Any, *, max_depth: int = MAX_DEPTH, finite: bool = True, text: bool = True
) -> str | None:
    """What makes a parsed JSON value unsafe to act on or to send on, or None when nothing
    does: nesting deeper than `max_depth`, a non-finite number (when `finite`), a string or key
    that is not valid Unicode (when `text`). Iterative, so any depth is safe to inspect."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if text and not _encodable(item):
                return "a string is not valid Unicode (lone surrogate)"
        elif isinstance(item, bool | int):
            continue
        elif isinstance(item, float | Decimal):
            finite_value = item.is_finite() if isinstance(item, Decimal) else math.isfinite(item)
            if finite and not finite_value:
                return f"{item} is not a finite number (JSON has no NaN or Infinity)"
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                return f"nested deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth + 1))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
