"""Scheduler: one timer thread per system that sleeps until the earliest pending deadline.

Adding a timer later than the current earliest does not wake the thread, so a steady stream of
deadlines costs a heap push and nothing else. Callbacks run on the timer thread and must not
block: they post messages or flip flags.

A cancelled timer lets go of its callback at once (so whatever the callback refers to, such
as a removed child's slot, is freed now, not when the timer would have fired), and the heap is
compacted when cancelled timers outnumber the live ones (O(n) heapify, amortised over at least
as many cancels).
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

_COMPACT_MIN = 64  # below this many cancelled timers, popping them as they come is cheaper


def _nothing() -> None:
    return None


@dataclass(order=True, slots=True)
class Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)
    owner: Scheduler | None = field(default=None, compare=False, repr=False)  # while queued

    def cancel(self) -> None:
        owner = self.owner
        if owner is not None:
            owner._cancel(self)
        else:  # fired already (or never queued): only make sure it does nothing
            self.cancelled = True
            self.callback = _nothing


class Scheduler:
    def __init__(self, clock: Clock, name: str = "hivekeeper-timers") -> None:
        self.clock = clock
        self._heap: list[Timer] = []
        self._cancelled = 0  # cancelled timers still in the heap
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._running = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, next(self._seq), callback, owner=self)
        with self._cv:
            heapq.heappush(self._heap, timer)
            if self._heap[0] is timer:
                self._cv.notify()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.clock.now() + delay, callback)

    def pending(self) -> int:
        with self._cv:
            return len(self._heap) - self._cancelled

    def queued(self) -> int:
        """Timers in the heap, cancelled ones included (bounded by about twice pending())."""
        with self._cv:
            return len(self._heap)

    def stop(self) -> None:
        with self._cv:
            self._running = False
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)

    def _cancel(self, timer: Timer) -> None:
        with self._cv:
            timer.callback = _nothing
            if timer.cancelled:
                return
            timer.cancelled = True
            if timer.owner is None:  # popped meanwhile: not in the heap any more
                return
            self._cancelled += 1
            if self._cancelled >= _COMPACT_MIN and self._cancelled * 2 > len(self._heap):
                self._compact()

    def _compact(self) -> None:
        """Drop every cancelled timer from the heap (caller holds the lock)."""
        live = []
        for t in self._heap:
            if t.cancelled:
                t.owner = None
            else:
                live.append(t)
        heapq.heapify(live)
        self._heap = live
        self._cancelled = 0

    def _pop(self) -> Timer:
        """Take the earliest timer off the heap (caller holds the lock)."""
        timer = heapq.heappop(self._heap)
        timer.owner = None
        if timer.cancelled:
            self._cancelled -= 1
        return timer

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._running:
                    while self._heap and self._heap[0].cancelled:
                        self._pop()
                    if self._heap and self._heap[0].when <= self.clock.now():
                        break
                    self.clock.wait(self._cv, self._heap[0].when if self._heap else None)
                if not self._running:
                    return
                timer = self._pop()
                callback = timer.callback
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - a timer callback must never kill the timer thread
                emit("timer_callback_failed", reason=repr(exc), level="error")
