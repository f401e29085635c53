"""What a supervisor incarnation knows about each of its children, and what becomes of a
child's slot once it is down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strategies import BackoffState

from ..delivery._slot import AgentSlot, SlotState
from ._node import SupervisorNode
from ._states import NodeState, Phase, Want

if TYPE_CHECKING:
    from .._scheduler import Timer
    from ..hosts._host_core import HostCore
    from ._child_tally import ChildTally, Kinds

__all__ = ["ChildRecord", "settle"]

_AFTER_STOP = {
    "restart": SlotState.RESTARTING,
    "backoff": SlotState.BACKOFF,
    "escalate": SlotState.DOWN,
    "shutdown": SlotState.STOPPED,
    "remove": SlotState.REMOVED,
    "fail": SlotState.FAILED,
    "passivate": SlotState.PASSIVATED,
}


_TALLIED = frozenset({"phase", "want", "restart_pending", "first_start"})


@dataclass(eq=False)
class ChildRecord:
    """phase: down | starting | running | stopping (what is); want: run | stop | remove (what
    should be); restart_pending: stop it, then start it again (a sibling's group restart);
    purpose: why it is being stopped; not_before: restart backoff; gen: the incarnation
    (host or supervisor actor) this supervisor started, whose reports it accepts;
    first_start: added by start_child and not started yet (if that start fails, the child is
    discarded, OTP's start_child contract, instead of restarted)."""

    node: AgentSlot | SupervisorNode
    gen: int = 0
    phase: Phase = Phase.DOWN
    want: Want = Want.RUN
    restart_pending: bool = False
    first_start: bool = False
    passivating: bool = False  # stopped (want=STOP) while idle, until its next message
    purpose: str = "restart"
    not_before: float | None = None
    backoff: BackoffState = field(default_factory=BackoffState)
    timer: Timer | None = None
    host: HostCore | None = None
    started_waiters: list[Any] = field(default_factory=list)  # start_child futures
    removed_waiters: list[Any] = field(default_factory=list)  # stop_child futures
    # kept by its supervisor's ChildTally (see _child_tally.py), told of every change below
    tally: ChildTally | None = field(default=None, repr=False)
    order: int = field(default=0, repr=False)
    kinds: Kinds | None = field(default=None, repr=False)
    in_down_heap: bool = field(default=False, repr=False)
    in_up_heap: bool = field(default=False, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _TALLIED:
            tally = self.__dict__.get("tally")
            if tally is not None:
                tally.changed(self)

    @property
    def held(self) -> bool:
        """Down and kept down: too many of its hung handlers still run (see max_abandoned)."""
        node = self.node
        return (
            self.phase == Phase.DOWN
            and isinstance(node, AgentSlot)
            and node.held_because is not None
        )

    @property
    def id(self) -> str:
        """The key decisions use: the path (fallback ids repeat across primaries)."""
        return self.node.path

    def resolve_started(self, error: Exception) -> None:
        """Fail the start_child callers still waiting for this child."""
        for fut in self.started_waiters:
            if not fut.done():
                fut.set_exception(error)
        self.started_waiters.clear()

    def resolve_removed(self) -> None:
        for fut in self.removed_waiters:
            if not fut.done():
                fut.set_result(None)
        self.removed_waiters.clear()


def settle(node: AgentSlot | SupervisorNode, purpose: str, supervisor: str) -> None:
    """The state a child is left in once down, by why it went down: restarting (messages
    wait), backoff or down (the fallback answers), stopped / removed / failed (messages are
    answered at once)."""
    if isinstance(node, AgentSlot):
        reason = {
            "shutdown": f"agent stopped: {supervisor} shut down",
            "remove": "agent removed (stop_child)",
            "fail": "the supervision tree failed",
        }.get(purpose)
        node.set_state(_AFTER_STOP.get(purpose, SlotState.RESTARTING), reason)
    elif purpose in ("shutdown", "remove"):
        node.state = NodeState.STOPPED
