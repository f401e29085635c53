"""Circuit-breaker policy: plain data; the runtime builds one breaker per child slot from it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BreakerPolicy"]


class BreakerPolicy(BaseModel):
    """Open after fail_max consecutive failures; after reset_timeout seconds let exactly one
    trial through (half-open): success closes, failure opens again.

    Failures are exceptions in handle() (except those in `exclude`), deadline overruns
    (count_timeouts) and INVALID_OUTPUT results (count_invalid_output).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    fail_max: int = Field(default=5, ge=1)
    reset_timeout: float = Field(default=60.0, gt=0.0, allow_inf_nan=False)
    exclude: tuple[type[BaseException], ...] = ()
    count_timeouts: bool = True
    count_invalid_output: bool = True
