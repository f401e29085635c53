"""SupervisorNode (the persistent record of one supervisor path) and the messages supervisor
actors receive. A node outlives its actor incarnations, as a slot outlives its hosts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from strategies import ExitKind

from ._spec import ChildSpec, Supervisor

if TYPE_CHECKING:
    from actors import FailureReason

    from ._envelope import Envelope
    from ._slot import AgentSlot
    from ._supervisor_actor import SupervisorActor

__all__ = [
    "Adopt",
    "Exited",
    "Reconcile",
    "Shutdown",
    "StartChild",
    "Started",
    "StopChild",
    "Stopped",
    "SupervisorNode",
    "TimerFired",
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
class TimerFired:
    what: str  # start_timeout | shutdown_timeout
    child: Any
    gen: int


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
class Adopt:
    nodes: tuple[Any, ...]  # nodes already in the tree index, to supervise from now on


@dataclass(eq=False)
class SupervisorNode:
    """state: starting | running | terminating | down (escalated, waiting for its parent) |
    stopped | failed. restarts: times its parent restarted it; escalations: times it gave up;
    budget_used: restarts inside its current window (of max_restarts)."""

    path: str
    spec: Supervisor
    parent: SupervisorNode | None
    children: list[AgentSlot | SupervisorNode] = field(default_factory=list)
    actor: SupervisorActor | None = None
    generation: int = 0
    state: str = "starting"
    restarts: int = 0
    escalations: int = 0
    budget_used: int = 0
    last_error: str | None = None
    started_at: float | None = None
    on_report: Callable[[Any], None] | None = None  # the root's reports go to its system
    kind: str = "supervisor"
    dynamic: bool = False  # added by start_child (not in its parent's declaration)

    @property
    def id(self) -> str:
        return self.spec.id

    def post(self, message: Any) -> None:
        """Deliver to the current incarnation; a message to a dead incarnation is dropped on
        purpose (it carries a generation that no live actor would accept)."""
        actor = self.actor
        if actor is None:
            return
        with contextlib.suppress(pykka.ActorDeadError):
            actor.actor_ref.tell(message)

    def report(self, message: Any) -> None:
        """Send to whoever supervises this node: its parent's actor, or the system."""
        if self.parent is not None:
            self.parent.post(message)
        elif self.on_report is not None:
            self.on_report(message)
