"""Rate limits (the seed's `async with self.rate_limiter.limit()`): plain data, and the token
bucket that carries one out, as pure functions of the time it is given."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["RateLimit", "TokenBucket"]


class RateLimit(BaseModel):
    """At most `per_second` messages a second on average, `burst` at once after a quiet spell
    (default: one second's worth, at least 1).

    One RateLimit object is one budget: give the same object to several ChildSpecs (the agents
    that call one provider) and they share it; two objects, even equal ones, are two budgets.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_second: float = Field(gt=0.0, allow_inf_nan=False)
    burst: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> RateLimit:
        if self.per_second > 1e9:
            msg = f"per_second={self.per_second} is not a limit"
            raise ValueError(msg)
        return self

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else max(1, math.ceil(self.per_second))

    # identity, not equality: equal limits are separate budgets (see the class docstring)
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


@dataclass(eq=False)
class TokenBucket:
    """Invariant: 0 <= tokens <= capacity, as of time `at`. Tokens accrue at `rate` a second."""

    rate: float
    capacity: int
    tokens: float
    at: float

    @classmethod
    def full(cls, limit: RateLimit, now: float) -> TokenBucket:
        return cls(limit.per_second, limit.capacity, float(limit.capacity), now)

    def refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(float(self.capacity), self.tokens + (now - self.at) * self.rate)
            self.at = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if one was there, else the seconds until one will be (nothing
        is taken then)."""
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def eta(self, now: float, ahead: int) -> float:
        """Seconds until the message with `ahead` messages before it could take a token, if
        nobody else takes any meanwhile."""
        self.refill(now)
        missing = ahead + 1 - self.tokens
        return max(0.0, missing / self.rate)

    def available(self, now: float) -> float:
        """Tokens there at `now` (without taking any)."""
        self.refill(now)
        return self.tokens
