"""The runtime: tree declarations, the running system (ask/tell/health), supervisor actors,
hosts, mailboxes, breakers in use, events."""

from actors import ExecutionResult, ExecutionStatus, FailureReason, ResultError

from ._breaker import BreakerState
from ._clock import Clock, FakeClock, MonotonicClock
from ._dead_letters import DeadLetter
from ._exceptions import HivekeeperError, SystemNotRunningError, TreeStartError, UnknownPathError
from ._health import ActorHealth, BreakerHealth, TreeHealth
from ._logging import configure_logging
from ._spec import ChildSpec, Supervisor
from ._system import PendingAsk, System, start

__all__ = [
    "ActorHealth",
    "BreakerHealth",
    "BreakerState",
    "ChildSpec",
    "Clock",
    "DeadLetter",
    "ExecutionResult",
    "ExecutionStatus",
    "FailureReason",
    "FakeClock",
    "HivekeeperError",
    "MonotonicClock",
    "PendingAsk",
    "ResultError",
    "Supervisor",
    "System",
    "SystemNotRunningError",
    "TreeHealth",
    "TreeStartError",
    "UnknownPathError",
    "configure_logging",
    "start",
]
