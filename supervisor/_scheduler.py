"""Scheduler: one timer thread per system that sleeps until the earliest pending deadline.

Adding a timer later than the current earliest does not wake the thread, so a steady stream of
deadlines costs a heap push and nothing else. Callbacks run on the timer thread and must not
block: they post messages or flip flags.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ._clock import Clock
from ._events import emit

__all__ = ["Scheduler", "Timer"]


@dataclass(order=True, slots=True)
class Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    def __init__(self, clock: Clock, name: str = "hivekeeper-timers") -> None:
        self.clock = clock
        self._heap: list[Timer] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._running = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, next(self._seq), callback)
        with self._cv:
            heapq.heappush(self._heap, timer)
            if self._heap[0] is timer:
                self._cv.notify()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock.now() + delay, callback)

    def pending(self) -> int:
        return sum(1 for t in self._heap if not t.cancelled)

    def stop(self) -> None:
        with self._cv:
            self._running = False
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._running:
                    while self._heap and self._heap[0].cancelled:
                        heapq.heappop(self._heap)
                    if self._heap and self._heap[0].when <= self.clock.now():
                        break
                    self.clock.wait(self._cv, self._heap[0].when if self._heap else None)
                if not self._running:
                    return
                timer = heapq.heappop(self._heap)
            try:
                timer.callback()
            except Exception as exc:  # noqa: BLE001 - a timer callback must never kill the timer thread
                emit("timer_callback_failed", reason=repr(exc), level="error")
