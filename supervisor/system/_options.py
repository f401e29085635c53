"""start()'s options, checked before anything starts: durations, the Ray address, tracing."""

from __future__ import annotations

import math
from typing import Any

from .._otel import Tracing
from ._asking import _MAX_TIMEOUT

__all__ = ["make_tracing", "ray_address", "seconds"]


def seconds(name: str, value: object) -> float:
    """A caller-given duration: a finite, positive number of seconds a wait accepts."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{name} must be a number of seconds, got {type(value).__name__}"
        raise TypeError(msg)
    if not (math.isfinite(value) and 0 < value <= _MAX_TIMEOUT):
        msg = (
            f"{name} must be a positive, finite number of seconds up to {_MAX_TIMEOUT:.0f}, "
            f"got {value!r}"
        )
        raise ValueError(msg)
    return float(value)


def make_tracing(tracing: bool | Any) -> Tracing | None:
    if tracing is False or tracing is None:
        return None
    return Tracing(None if tracing is True else tracing)


def ray_address(address: object) -> str | None:
    if address is None:
        return None
    if not isinstance(address, str) or not address.strip():
        msg = f"ray_address must be a non-empty string or None, got {address!r}"
        raise TypeError(msg) if not isinstance(address, str) else ValueError(msg)
    return address
