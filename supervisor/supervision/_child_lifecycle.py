"""ChildLifecycle: the effects a supervisor has on its children: start one (a thread host or
a child supervisor actor), stop one (it finishes its current message; abandoned after its
shutdown_timeout), remove one, and the timers and events that go with them. The decisions of
when to do which are SupervisorActor's (its reconcile loop); these only carry them out."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pykka

from .._events import emit
from .._exceptions import ChildStartError
from ..delivery._messages import Shutdown, TimerFired
from ..delivery._slot import AgentSlot, SlotState
from ..hosts._host import ThreadHost
from ._child_record import ChildRecord, settle
from ._node import SupervisorNode
from ._states import Mode, NodeState, Phase, Want

if TYPE_CHECKING:
    from ..delivery._runtime import Runtime
    from ._tree import TreeIndex

__all__ = ["ChildLifecycle"]


class ChildLifecycle:
    """Mixed into SupervisorActor (a pykka actor: actor_ref is its own)."""

    node: SupervisorNode
    tree: TreeIndex
    runtime: Runtime
    children: list[ChildRecord]
    mode: str
    purpose: str
    actor_ref: Any

    def _spawn_supervisor(self, node: SupervisorNode, gen: int) -> None:
        """Start a new incarnation of a child supervisor (SupervisorActor provides it)."""
        raise NotImplementedError

    def _start_child(self, rec: ChildRecord) -> None:
        rec.not_before = None
        rec.phase = Phase.STARTING
        node = rec.node
        if isinstance(node, AgentSlot):
            rec.gen = node.new_generation()
            node.set_state(SlotState.STARTING)
            rec.host = ThreadHost.launch(node, rec.gen)
            timeout = node.spec.start_timeout
        else:
            node.generation += 1
            rec.gen = node.generation
            self._spawn_supervisor(node, rec.gen)
            timeout = None
        if timeout is not None:
            self._arm(rec, "start_timeout", timeout)

    def _held_for_abandoned(self, rec: ChildRecord) -> bool:
        """Keep an agent down instead of restarting it while `max_abandoned` of its hung
        handlers still run: each spinning one takes CPU from every agent, and threads cannot
        be killed. Its fallback answers meanwhile; a host reports Reconcile when its abandoned
        thread ends, and the agent is started again then."""
        node = rec.node
        if not isinstance(node, AgentSlot) or not node.too_many_abandoned():
            return False
        running = node.stats.abandoned_running
        why = (
            f"{running} hung handlers of {node.path} still run (max_abandoned="
            f"{node.spec.max_abandoned}): kept down until one ends; a thread cannot be "
            "killed, so run an agent that hangs like this with process isolation"
        )
        if node.hold_down(why):
            self._event("agent_abandoned_limit", rec, level="error", reason=why,
                        abandoned=running)  # fmt: skip
        return True

    def _stop_child(self, rec: ChildRecord) -> None:
        purpose = (
            self.purpose
            if self.mode == Mode.TERMINATING
            else (
                "restart"
                if rec.restart_pending
                else ("remove" if rec.want == Want.REMOVE else "shutdown")
            )
        )
        rec.purpose = purpose
        rec.phase = Phase.STOPPING
        node = rec.node
        self._event("child_stopping", rec, reason=purpose)
        if isinstance(node, AgentSlot):
            state = SlotState.DOWN if purpose == "escalate" else SlotState.STOPPING
            host = rec.host
            if host is not None:
                node.detach(host)
                node.set_state(state)
                host.request_stop()
            else:
                node.set_state(state)
            self._arm(rec, "shutdown_timeout", node.spec.shutdown_timeout)
        else:
            node.state = NodeState.TERMINATING
            node.post(Shutdown(purpose))
            if node.spec.shutdown_timeout is not None:
                self._arm(rec, "shutdown_timeout", node.spec.shutdown_timeout)

    def _set_down(self, rec: ChildRecord, purpose: str) -> None:
        settle(rec.node, purpose, self.node.path)

    def _remove(self, rec: ChildRecord, start_error: Exception | None = None) -> None:
        """Forget a child that is down: out of this supervisor and the tree index, its queue
        answered. A start_child still waiting for it gets start_error (default: a stop_child
        removed it first)."""
        self.children.remove(rec)
        self._set_down(rec, "remove")
        self.tree.remove_child(self.node, rec.node)
        self._event("child_removed", rec, reason=rec.purpose)
        rec.resolve_started(
            start_error or ChildStartError(rec.node.path, "removed by stop_child before it started")
        )
        rec.resolve_removed()
        self._cancel(rec)
        rec.host = None

    def _event(self, event: str, rec: ChildRecord, level: str = "info", **fields: Any) -> None:
        """A lifecycle event about one child, with the keys every supervisor report has."""
        node = rec.node
        emit(event, level=level, supervisor=self.node.path, child=node.id, path=node.path,
             agent_id=node.id, **fields)  # fmt: skip

    def _arm(self, rec: ChildRecord, what: str, seconds: float) -> None:
        gen = rec.gen
        rec.timer = self.runtime.scheduler.call_later(
            seconds, lambda: self._post(TimerFired(what, rec.node, gen))
        )

    def _cancel(self, rec: ChildRecord) -> None:
        if rec.timer is not None:
            rec.timer.cancel()
            rec.timer = None

    def _post(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)
