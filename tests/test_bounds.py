"""Durations must be finite: an infinite one accepted in a declaration used to kill the
system's timer thread (OverflowError in a lock wait), after which no deadline held."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import ValidationError

from strategies import Backoff, BreakerPolicy, OneForOne
from supervisor import ChildSpec, HttpLimits, Supervisor
from supervisor._clock import MonotonicClock

from .agents import Echo


@pytest.mark.parametrize("field", ["message_timeout", "start_timeout", "shutdown_timeout"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e308, -1.0, 0.0])
def test_child_spec_durations_must_be_finite_and_positive(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        ChildSpec("a", Echo, **{field: value})


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (Backoff, {"max_backoff": float("inf")}),
        (Backoff, {"min_backoff": float("nan")}),
        (BreakerPolicy, {"reset_timeout": float("inf")}),
        (OneForOne, {"within_seconds": float("inf")}),
        (Supervisor, {"id": "s", "shutdown_timeout": float("inf")}),
    ],
)
def test_policy_durations_must_be_finite(make: Any, kwargs: dict[str, Any]) -> None:
    args = (kwargs.pop("id"),) if "id" in kwargs else ()
    with pytest.raises(ValidationError):
        make(*args, **kwargs)


@pytest.mark.parametrize("value", [float("inf"), 1e308, float("nan"), 0.0])
def test_http_request_timeout_must_be_finite(value: float) -> None:
    with pytest.raises(ValueError, match="request_timeout"):
        HttpLimits(request_timeout=value)


def test_a_far_deadline_waits_instead_of_overflowing() -> None:
    cv = threading.Condition()
    done = threading.Event()

    def waiter() -> None:
        with cv:
            MonotonicClock().wait(cv, 1e300)  # returns when notified, never raises
        done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    while not done.is_set():
        with cv:
            cv.notify_all()
        done.wait(0.01)
    thread.join(5.0)
    assert done.is_set()
