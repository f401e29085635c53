"""The runtime: tree declarations, the running system (ask/tell/health), supervisor actors,
hosts, mailboxes, breakers in use, events."""

from actors import ExecutionResult, ExecutionStatus, FailureReason, ResultError

from ._clock import Clock, FakeClock, MonotonicClock
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
from ._spec import ChildSpec, Supervisor
from .delivery._breaker import BreakerState
from .delivery._dead_letters import DeadLetter
from .hosts._ray_session import warm_ray_actors
from .inspect._health import ActorHealth, BreakerHealth, RateLimitHealth, TreeHealth
from .inspect._health_models import StoreHealth
from .inspect._http import HealthServer, serve_http
from .inspect._http_guard import HttpLimits
from .inspect._logging import configure_logging
from .inspect._metrics import TreeCollector, metrics_registry, render_metrics
from .system._asking import PendingAsk
from .system._start import start
from .system._system import System

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
    "StoreHealth",
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
    "warm_ray_actors",
]
