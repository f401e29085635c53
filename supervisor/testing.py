"""Helpers for testing supervision trees, ours and our users': capture lifecycle events and
wait on them, drive time with a FakeClock.

    from supervisor.testing import capture_events, FakeClock

    with capture_events() as events:
        with start(tree) as system:
            system.ask("root/flaky", "boom")
            events.wait_for("child_started", path="root/flaky", count=2)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._clock import FakeClock
from ._events import add_sink, remove_sink

__all__ = ["EventLog", "FakeClock", "capture_events", "wait_until"]


class EventLog:
    """The events emitted while capturing, in order (each a dict with at least event, level)."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._cv = threading.Condition(threading.Lock())  # not re-entrant: see _matching

    def __call__(self, event: dict[str, Any]) -> None:
        with self._cv:
            self._events.append(event)
            self._cv.notify_all()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self._cv:
            return iter(list(self._events))

    def __len__(self) -> int:
        return len(self._events)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._events[index]

    def matching(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        with self._cv:
            return self._matching(event, fields)

    def _matching(self, event: str | None, fields: dict[str, Any]) -> list[dict[str, Any]]:
        """The lock held (a plain lock, not re-entrant)."""
        return [
            e
            for e in self._events
            if (event is None or e["event"] == event)
            and all(e.get(k) == v for k, v in fields.items())
        ]

    def names(self) -> list[str]:
        return [e["event"] for e in self]

    def wait_for(
        self, event: str | None = None, *, count: int = 1, timeout: float = 10.0, **fields: Any
    ) -> list[dict[str, Any]]:
        """Block until `count` matching events were captured; AssertionError after timeout."""
        with self._cv:
            ok = self._cv.wait_for(lambda: len(self._matching(event, fields)) >= count, timeout)
        if not ok:
            seen = [(e["event"], e.get("path")) for e in self]
            msg = f"waited {timeout}s for {count}x {event} {fields}; saw {seen}"
            raise AssertionError(msg)
        return self.matching(event, **fields)


@contextmanager
def capture_events() -> Iterator[EventLog]:
    """Collect hivekeeper's events from every thread while the block runs."""
    log = EventLog()
    add_sink(log)
    try:
        yield log
    finally:
        remove_sink(log)


def wait_until(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005
) -> None:
    """Poll predicate until true (for state no event announces); AssertionError on timeout."""
    pause = threading.Event()  # never set: a wait on it is an interruptible pause
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            msg = f"condition not met within {timeout}s"
            raise AssertionError(msg)
        pause.wait(interval)
        waited += interval
