"""The runtime: tree declarations, the running system (ask/tell/health), supervisor actors,
hosts, mailboxes, breakers in use, events."""

from actors import ExecutionResult, ExecutionStatus, FailureReason, ResultError

from ._asking import PendingAsk
from ._breaker import BreakerState
from ._clock import Clock, FakeClock, MonotonicClock
from ._dead_letters import DeadLetter
from ._events import subscribe
from ._exceptions import (
    ChildStartError,
    DuplicateChildError,
    HivekeeperError,
    NotAChildError,
    SupervisorUnavailableError,
    SystemNotRunningError,
    TreeStartError,
    UnknownPathError,
)
from ._health import ActorHealth, BreakerHealth, RateLimitHealth, TreeHealth
from ._http import HealthServer, serve_http
from ._http_guard import HttpLimits
from ._logging import configure_logging
from ._metrics import TreeCollector, metrics_registry, render_metrics
from ._spec import ChildSpec, Supervisor
from ._system import System, start

__all__ = [
    "ActorHealth",
    "BreakerHealth",
    "BreakerState",
    "ChildSpec",
    "ChildStartError",
    "Clock",
    "DeadLetter",
    "DuplicateChildError",
    "ExecutionResult",
    "ExecutionStatus",
    "FailureReason",
    "FakeClock",
    "HealthServer",
    "HivekeeperError",
    "HttpLimits",
    "MonotonicClock",
    "NotAChildError",
    "PendingAsk",
    "RateLimitHealth",
    "ResultError",
    "Supervisor",
    "SupervisorUnavailableError",
    "System",
    "SystemNotRunningError",
    "TreeCollector",
    "TreeHealth",
    "TreeStartError",
    "UnknownPathError",
    "configure_logging",
    "metrics_registry",
    "render_metrics",
    "serve_http",
    "start",
    "subscribe",
]
