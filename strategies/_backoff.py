"""Exponential backoff with jitter and a reset after a quiet period (Akka's BackoffSupervisor)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Backoff", "BackoffState", "next_backoff"]


class Backoff(BaseModel):
    """Delays that grow as min_backoff * 2**n, capped at max_backoff, stretched by up to
    random_factor at random. A crash-free period of reset_after seconds starts again at
    min_backoff (None: 2 * max_backoff)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_backoff: float = Field(default=0.1, ge=0.0, allow_inf_nan=False)
    max_backoff: float = Field(default=10.0, ge=0.0, allow_inf_nan=False)
    random_factor: float = Field(default=0.2, ge=0.0, le=1.0)
    reset_after: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check_bounds(self) -> Backoff:
        if self.max_backoff < self.min_backoff:
            msg = f"max_backoff ({self.max_backoff}) must be >= min_backoff ({self.min_backoff})"
            raise ValueError(msg)
        return self

    @property
    def quiet_period(self) -> float:
        return self.reset_after if self.reset_after is not None else 2.0 * self.max_backoff

    def delay(self, attempt: int, rand: float) -> float:
        """Delay before attempt number `attempt` (0-based); rand is uniform in [0, 1)."""
        base = min(self.max_backoff, self.min_backoff * (2.0 ** min(attempt, 62)))
        return min(
            self.max_backoff * (1.0 + self.random_factor), base * (1.0 + self.random_factor * rand)
        )


@dataclass(frozen=True, slots=True)
class BackoffState:
    """attempt: restarts in the current streak; last_at: when the last one was scheduled."""

    attempt: int = 0
    last_at: float | None = None


def next_backoff(
    policy: Backoff, state: BackoffState, now: float, rand: float
) -> tuple[float, BackoffState]:
    """The delay for a restart requested at `now`, and the streak after it."""
    attempt = state.attempt
    if state.last_at is not None and now - state.last_at >= policy.quiet_period:
        attempt = 0
    return policy.delay(attempt, rand), BackoffState(attempt=attempt + 1, last_at=now)
