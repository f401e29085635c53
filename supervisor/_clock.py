"""Clocks: the monotonic clock the runtime uses, and a fake clock for deterministic tests.

Every timed decision (deadlines, breaker reset, restart window, backoff) reads `now()`, and
every timed wait goes through `wait()`, so a FakeClock drives the whole runtime.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol

__all__ = ["Clock", "FakeClock", "MonotonicClock"]


class Clock(Protocol):
    real: bool

    def now(self) -> float:
        """Seconds on a monotonic scale."""

    def wait(self, cv: threading.Condition, deadline: float | None) -> None:
        """With cv held: wait until notified or until `deadline` (clock time) has come."""


_LONGEST_WAIT = min(threading.TIMEOUT_MAX, 24 * 3600.0)


class MonotonicClock:
    real = True

    def now(self) -> float:
        return time.monotonic()

    def wait(self, cv: threading.Condition, deadline: float | None) -> None:
        if deadline is None:
            cv.wait()
        else:  # a far deadline waits as long as a lock can, and is checked again then
            cv.wait(min(max(0.0, deadline - time.monotonic()), _LONGEST_WAIT))


class FakeClock:
    """Time moves only when advance() is called; waiters on it are woken when it does."""

    real = False

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._waiting: weakref.WeakSet[threading.Condition] = weakref.WeakSet()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            msg = "a clock cannot go back"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds
            waiting = list(self._waiting)
        for cv in waiting:
            with cv:
                cv.notify_all()

    def wait(self, cv: threading.Condition, deadline: float | None) -> None:
        with self._lock:
            if deadline is not None and self._now >= deadline:
                return
            self._waiting.add(cv)
        try:
            cv.wait()
        finally:
            with self._lock:
                self._waiting.discard(cv)
