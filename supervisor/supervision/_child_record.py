"""What a supervisor incarnation knows about each of its children, and what becomes of a
child's slot once it is down."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from strategies import BackoffState

from ..delivery._slot import AgentSlot, SlotState
from ._node import SupervisorNode
from ._states import NodeState, Phase, Want

if TYPE_CHECKING:
    from .._scheduler import Timer
    from ..hosts._host_core import HostCore
    from ._child_tally import ChildTally

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


class ChildRecord:
    """phase: down | starting | running | stopping (what is); want: run | stop | remove (what
    should be); restart_pending: stop it, then start it again (a sibling's group restart);
    purpose: why it is being stopped; not_before: restart backoff; gen: the incarnation
    (host or supervisor actor) this supervisor started, whose reports it accepts;
    first_start: added by start_child and not started yet (if that start fails, the child is
    discarded, OTP's start_child contract, instead of restarted).

    phase, want, restart_pending and first_start are kept by its supervisor's ChildTally
    (see _child_tally.py), which each change of one of them is told of."""

    __slots__ = (
        "__weakref__",
        "_first_start",
        "_phase",
        "_restart_pending",
        "_want",
        "backoff",
        "gen",
        "host",
        "in_down_heap",
        "in_up_heap",
        "kinds",
        "node",
        "not_before",
        "order",
        "passivating",
        "purpose",
        "removed_waiters",
        "started_waiters",
        "tally",
        "timer",
    )

    def __init__(self, node: AgentSlot | SupervisorNode, *, first_start: bool = False) -> None:
        self.node = node
        self.gen = 0
        self._phase = Phase.DOWN
        self._want = Want.RUN
        self._restart_pending = False
        self._first_start = first_start
        self.passivating = False  # stopped (want=STOP) while idle, until its next message
        self.purpose = "restart"
        self.not_before: float | None = None
        self.backoff = BackoffState()
        self.timer: Timer | None = None
        self.host: HostCore | None = None
        self.started_waiters: list[Any] = []  # start_child futures
        self.removed_waiters: list[Any] = []  # stop_child futures
        self.tally: ChildTally | None = None
        self.order = 0
        self.kinds: int | None = None  # its ChildTally's flags for it, while enrolled
        self.in_down_heap = False
        self.in_up_heap = False

    def __repr__(self) -> str:
        return f"ChildRecord({self.node.path!r}, {self._phase.value}, want={self._want.value})"

    def _changed(self) -> None:
        tally = self.tally
        if tally is not None:
            tally.changed(self)

    @property
    def phase(self) -> Phase:
        return self._phase

    @phase.setter
    def phase(self, value: Phase) -> None:
        self._phase = value
        self._changed()

    @property
    def want(self) -> Want:
        return self._want

    @want.setter
    def want(self, value: Want) -> None:
        self._want = value
        self._changed()

    @property
    def restart_pending(self) -> bool:
        return self._restart_pending

    @restart_pending.setter
    def restart_pending(self, value: bool) -> None:
        self._restart_pending = value
        self._changed()

    @property
    def first_start(self) -> bool:
        return self._first_start

    @first_start.setter
    def first_start(self, value: bool) -> None:
        if value != self._first_start:
            self._first_start = value
            self._changed()

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
