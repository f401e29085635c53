"""Rate limiters in use: one token bucket per RateLimit object, shared by every slot of the
system whose ChildSpec names that object (the agents that call one provider)."""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, TypeVar

from strategies import RateLimit, TokenBucket

from .._clock import Clock

if TYPE_CHECKING:
    from ._envelope import Envelope

_E = TypeVar("_E", bound="Envelope")

__all__ = ["Limiter", "Limiters"]


class Limiter:
    """A TokenBucket behind a lock (slots of several agents take from it)."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self.limit = limit
        self._bucket = TokenBucket.full(limit, clock.now())
        self._lock = threading.Lock()

    def take(self, now: float) -> float:
        """0.0 when a token was taken, else the seconds until one is there."""
        with self._lock:
            return self._bucket.take(now)

    def eta(self, now: float, ahead: int) -> float:
        with self._lock:
            return self._bucket.eta(now, ahead)

    def available(self, now: float) -> float:
        with self._lock:
            return self._bucket.available(now)

    def too_late(self, now: float, ahead: int, deadline: float | None) -> bool:
        """Would a message with `ahead` messages before it miss `deadline` waiting for its
        token (if nobody else takes one meanwhile)?"""
        return deadline is not None and now + self.eta(now, ahead) >= deadline

    def shed(self, queue: deque[_E], now: float, wait: float) -> tuple[deque[_E], list[_E]]:
        """The head of `queue` gets a token in `wait` s, each message behind it 1/rate s later:
        (the messages that can wait, in order; those whose deadline comes first)."""
        step = 1.0 / self.limit.per_second
        kept: deque[_E] = deque()
        shed: list[_E] = []
        for i, env in enumerate(queue):
            late = env.deadline is not None and now + wait + i * step >= env.deadline
            (shed if late else kept).append(env)
        return (kept, shed) if shed else (queue, shed)


class Limiters:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._by_limit: dict[RateLimit, Limiter] = {}  # keyed by identity (RateLimit.__hash__)
        self._lock = threading.Lock()

    def for_limit(self, limit: RateLimit) -> Limiter:
        with self._lock:
            limiter = self._by_limit.get(limit)
            if limiter is None:
                limiter = self._by_limit[limit] = Limiter(limit, self._clock)
            return limiter
