"""The messages a supervisor actor receives: from its hosts and child supervisors (Started,
Exited, Stopped), from timers (TimerFired, Reconcile), from the system (Shutdown, StartChild,
StopChild) and from the tree index (Adopt). Plain frozen data: any layer may send them."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strategies import ExitKind

from .._spec import ChildSpec, Supervisor

if TYPE_CHECKING:
    from actors import FailureReason

    from ._envelope import Envelope

__all__ = [
    "Adopt",
    "Exited",
    "Passivate",
    "Reconcile",
    "Reports",
    "Shutdown",
    "StartChild",
    "Started",
    "StopChild",
    "Stopped",
    "TimerFired",
    "Wake",
]


@dataclass(frozen=True, slots=True)
class Started:
    child: Any  # AgentSlot | SupervisorNode
    gen: int


@dataclass(frozen=True, slots=True)
class Exited:
    child: Any
    gen: int
    kind: ExitKind
    env: Envelope | None = None
    error: str | None = None
    reason: FailureReason | None = None  # finer than kind (memory); default: crash / deadline


@dataclass(frozen=True, slots=True)
class Stopped:
    child: Any
    gen: int


@dataclass(frozen=True, slots=True)
class Reports:
    """Started / Stopped reports of many children to one supervisor, in the order they were
    made (task hosts of one loop report so: one message, one reconcile step, for hundreds)."""

    reports: tuple[Started | Stopped, ...]


@dataclass(frozen=True, slots=True)
class TimerFired:
    what: str  # start_timeout | shutdown_timeout
    child: Any
    gen: int
    # a start_timeout for many children started in one step: (child, gen) each (child: None)
    batch: tuple[tuple[Any, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Reconcile:
    pass


@dataclass(frozen=True, slots=True)
class Shutdown:
    purpose: str  # shutdown | restart | escalate | remove | fail


@dataclass(frozen=True, slots=True)
class StartChild:
    spec: ChildSpec | Supervisor
    future: Future[str]


@dataclass(frozen=True, slots=True)
class StopChild:
    child: Any  # AgentSlot | SupervisorNode
    future: Future[None]


@dataclass(frozen=True, slots=True)
class Passivate:
    child: Any  # AgentSlot: idle for its passivate_after (checked again by the supervisor)
    gen: int


@dataclass(frozen=True, slots=True)
class Wake:
    child: Any  # AgentSlot: a message came for it while passivated


@dataclass(frozen=True, slots=True)
class Adopt:
    nodes: tuple[Any, ...]  # nodes already in the tree index, to supervise from now on
