"""Restart intensity: a sliding window of monotonic restart timestamps (OTP's add_restart/3).

add_restart() is the pure form (a tuple in, a tuple out) for reasoning and tests;
RestartWindow is the same rule as a small deterministic object with amortised O(1) updates
(timestamps only ever grow, so expired ones leave from the left), which a supervisor keeps:
with a large max_restarts the tuple form would rescan the whole history on every restart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["IntensityCheck", "RestartWindow", "add_restart", "restarts_in_window"]


@dataclass(frozen=True, slots=True)
class IntensityCheck:
    """Outcome of recording one restart.

    history: the restart timestamps still inside the window, newest last.
    exceeded: more than max_restarts restarts inside the window; the supervisor must give up.
    """

    history: tuple[float, ...]
    exceeded: bool


def restarts_in_window(history: tuple[float, ...], now: float, within: float) -> tuple[float, ...]:
    """The timestamps t of history with now <= t + within (the window is closed at both ends)."""
    return tuple(t for t in history if now <= t + within)


def add_restart(
    history: tuple[float, ...], now: float, max_restarts: int, within: float
) -> IntensityCheck:
    """Record a restart at `now`; exceeded when the window then holds more than max_restarts."""
    kept = (*restarts_in_window(history, now, within), now)
    return IntensityCheck(history=kept, exceeded=len(kept) > max_restarts)


class RestartWindow:
    """The restarts of the last `within` seconds. Invariant: timestamps are non-decreasing
    and, after prune(now), all satisfy now <= t + within."""

    def __init__(self, within: float) -> None:
        self.within = within
        self._times: deque[float] = deque()

    def prune(self, now: float) -> int:
        """Drop restarts that left the window; the number still inside it."""
        times, within = self._times, self.within
        while times and not now <= times[0] + within:
            times.popleft()
        return len(times)

    def add(self, now: float) -> int:
        """Record a restart at `now`; the number inside the window, this one included."""
        self.prune(now)
        self._times.append(now)
        return len(self._times)

    def count(self, now: float) -> int:
        """Restarts inside the window at `now` (does not change the window)."""
        snapshot = tuple(self._times)  # one C-level copy: safe while another thread adds
        return sum(1 for t in snapshot if now <= t + self.within)

    @property
    def history(self) -> tuple[float, ...]:
        return tuple(self._times)
