"""Reply: a one-shot, first-writer-wins answer slot for one ask.

Several parties may try to answer the same ask (the agent, the watchdog at the deadline, the
supervisor after a crash, a fallback, the caller's own timeout); exactly one wins and the
others learn that they lost. Waiting is a bare lock acquire: the cheapest wait CPython has.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from actors._events import emit

if TYPE_CHECKING:
    from actors import ExecutionResult

    from .._clock import Clock

__all__ = ["Reply"]


def _run(callback: Callable[[ExecutionResult], None], result: ExecutionResult) -> None:
    """A waiter's callback (an asyncio bridge, a fake-clock waker) must never break the thread
    that answers: an agent's host."""
    try:
        callback(result)
    except Exception:  # noqa: BLE001 - e.g. call_soon_threadsafe on a loop that has closed
        emit("reply_callback_failed", level="warning", reason="a waiter's callback raised")


class Reply:
    __slots__ = ("_callbacks", "_gate", "_lock", "_result")

    def __init__(self) -> None:
        self._gate = threading.Lock()
        self._gate.acquire()  # released once, when the result is set
        self._lock = threading.Lock()
        self._result: ExecutionResult | None = None
        self._callbacks: list[Callable[[ExecutionResult], None]] | None = None

    @property
    def done(self) -> bool:
        return self._result is not None

    @property
    def result(self) -> ExecutionResult | None:
        return self._result

    def set(self, result: ExecutionResult) -> bool:
        """Answer; False when someone answered first (this answer is then discarded)."""
        with self._lock:
            if self._result is not None:
                return False
            self._result = result
            callbacks = self._callbacks
            self._callbacks = None
        self._gate.release()
        if callbacks:
            for callback in callbacks:
                _run(callback, result)
        return True

    def add_done_callback(self, callback: Callable[[ExecutionResult], None]) -> None:
        """Run callback(result) once answered (at once, on this thread, if already answered)."""
        with self._lock:
            if self._result is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
            result = self._result
        _run(callback, result)

    def wait(self, clock: Clock, deadline: float | None) -> bool:
        """Block until answered or until `deadline` on `clock`; True when answered."""
        if self._result is not None:
            return True
        if clock.real:
            remaining = -1.0 if deadline is None else deadline - clock.now()
            if deadline is not None and remaining <= 0:
                return self._result is not None
            if self._gate.acquire(timeout=remaining):
                self._gate.release()
            return self._result is not None
        cv = threading.Condition()

        def wake(_: ExecutionResult) -> None:
            with cv:
                cv.notify_all()

        self.add_done_callback(wake)
        with cv:
            while self._result is None and (deadline is None or clock.now() < deadline):
                clock.wait(cv, deadline)
        return self._result is not None
