"""Pure supervision policy: restart strategies, restart intensity, backoff, breaker policies and
rate limits.

No threads, no pykka, no I/O: everything here is plain data and pure functions, testable with
a fake clock in microseconds.
"""

from ._backoff import Backoff, BackoffState, next_backoff
from ._breaker_policy import BreakerPolicy
from ._intensity import IntensityCheck, RestartWindow, add_restart, restarts_in_window
from ._rate_limit import RateLimit, TokenBucket
from ._restart_types import ExitKind, RestartType, should_restart
from ._strategy import (
    ChildInfo,
    ExitPlan,
    OneForAll,
    OneForOne,
    RestartStrategy,
    RestForOne,
    plan_exit,
)

__all__ = [
    "Backoff",
    "BackoffState",
    "BreakerPolicy",
    "ChildInfo",
    "ExitKind",
    "ExitPlan",
    "IntensityCheck",
    "OneForAll",
    "OneForOne",
    "RateLimit",
    "RestForOne",
    "RestartStrategy",
    "RestartType",
    "RestartWindow",
    "TokenBucket",
    "add_restart",
    "next_backoff",
    "plan_exit",
    "restarts_in_window",
    "should_restart",
]
