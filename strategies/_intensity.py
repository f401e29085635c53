"""Restart intensity: a sliding window of monotonic restart timestamps (OTP's add_restart/3)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["IntensityCheck", "add_restart", "restarts_in_window"]


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
