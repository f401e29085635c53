"""SlotRate: one agent slot's rate limit.

The token bucket may be shared with other slots (the same RateLimit object on several
children is one budget: see _rate_limiter.py); what is the slot's own is the timer that wakes
its host when the next token is due. A message that cannot wait for a token within its
deadline is refused (REJECTED, rate_limited) rather than queued to expire."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._scheduler import Timer
    from ._envelope import Envelope
    from ._rate_limiter import Limiter
    from ._slot import AgentSlot

__all__ = ["SlotRate"]


class SlotRate:
    """`slot`'s rate limit. too_late, take, shed, wake_at and stop_waking are called with
    the slot's lock held; due (the timer's) and health take it. The timer is written here alone."""

    __slots__ = ("_slot", "_timer", "limiter")

    def __init__(self, limiter: Limiter, slot: AgentSlot) -> None:
        self.limiter = limiter
        self._slot = slot
        self._timer: Timer | None = None

    def too_late(self, queued: int, deadline: float | None) -> bool:
        """Would a message with this deadline, queued behind `queued` others, miss it for
        want of a token?"""
        return self.limiter.too_late(self._slot.runtime.clock.now(), queued, deadline)

    def take(self, now: float) -> float:
        """Take a token for the head of the queue: 0.0, or how long until one is due."""
        return self.limiter.take(now)

    def shed(
        self, queue: deque[Envelope], now: float, wait: float
    ) -> tuple[deque[Envelope], list[Envelope]]:
        """(what stays queued, the messages whose deadlines cannot wait `wait` for a token)."""
        return self.limiter.shed(queue, now, wait)

    def wake_at(self, when: float) -> None:
        """Wake the slot's host when a token is due (one timer at a time, the earliest)."""
        timer = self._timer
        if timer is None or timer.when > when:
            if timer is not None:
                timer.cancel()
            self._timer = self._slot.runtime.scheduler.call_at(when, self._due)

    def stop_waking(self) -> None:
        """The slot closed: no token is waited for any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        slot = self._slot
        with slot.lock:
            self._timer = None
            host = slot.host
        if host is not None:
            host.wake()

    def error(self) -> str:
        limit = self.limiter.limit
        return (
            f"rate limited ({limit.per_second:g}/s, burst {limit.capacity}): "
            "its deadline cannot wait for a token"
        )

    def health(self) -> tuple[float, int]:
        """(tokens left, messages waiting for one)."""
        slot = self._slot
        with slot.lock:
            waiting = len(slot.queue) if self._timer is not None else 0
        return self.limiter.available(slot.runtime.clock.now()), waiting
