"""SupervisorNode: the persistent record of one supervisor path. A node outlives its actor
incarnations, as a slot outlives its hosts. (The messages supervisors receive: _messages.py.)"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pykka

from .._spec import Supervisor
from ._states import NodeState

if TYPE_CHECKING:
    from ..delivery._slot import AgentSlot
    from ._supervisor_actor import SupervisorActor

__all__ = ["SupervisorNode"]


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
    state: NodeState = NodeState.STARTING
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
