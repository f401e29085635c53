"""DynamicChildren: what a supervisor does with start_child / stop_child requests.

OTP's start_child contract: a child added at runtime whose first start fails (its __init__ or
on_start raised, it overran its start_timeout, or, for a child supervisor, it gave up while
starting) is discarded, never restarted and never kept, and the caller gets ChildStartError.
Its supervisor and siblings are untouched: nothing is counted against the restart budget.

A child's first start waits for no sibling (the at-most-one-starting and stop-before-start
rules of the reconcile loop are for restarts and declaration order): so an agent that calls
start_child from its handler, or from on_start, while a sibling is starting or stopping
(perhaps one waiting on that very agent), never waits on a cycle."""

from __future__ import annotations

import contextlib

from strategies import ExitKind

from .._exceptions import ChildStartError, SupervisorUnavailableError, UnknownPathError
from ..delivery._messages import Adopt, Exited, StartChild, StopChild
from ..delivery._slot import AgentSlot, SlotState
from ._child_lifecycle import ChildLifecycle
from ._child_record import ChildRecord
from ._node import SupervisorNode
from ._states import NodeState, Phase, Want

__all__ = ["DynamicChildren"]


class DynamicChildren:
    """The start_child / stop_child part of one supervisor incarnation, acting on its
    children through `lifecycle`. `terminating` is the actor's: whether it is shutting down
    or escalating (then nothing new starts)."""

    def __init__(self, lifecycle: ChildLifecycle) -> None:
        self._life = lifecycle
        self._path = lifecycle.node.path

    def on_start_child(self, msg: StartChild, terminating: bool) -> None:
        if terminating:
            msg.future.set_exception(SupervisorUnavailableError(f"{self._path} is shutting down"))
            return
        try:
            node = self._life.tree.add_child(self._life.node, msg.spec)
        except Exception as exc:  # noqa: BLE001 - reported to the caller, never crashes us
            msg.future.set_exception(exc)
            return
        rec = ChildRecord(node, first_start=True)
        rec.started_waiters.append(msg.future)
        self._life.add(rec)

    def on_adopt(self, msg: Adopt, terminating: bool) -> None:
        """Supervise nodes the tree index already created (fallbacks of a new child)."""
        if not terminating:
            for node in msg.nodes:
                self._life.add(ChildRecord(node))

    def on_stop_child(self, msg: StopChild) -> None:
        rec = self._life.record_of(msg.child)
        if rec is not None:
            rec.want = Want.REMOVE
            rec.removed_waiters.append(msg.future)
            return
        # removed meanwhile (a concurrent stop_child, a temporary child that exited)
        path = getattr(msg.child, "path", str(msg.child))
        msg.future.set_exception(UnknownPathError(path, detail=f"{path} was already removed"))

    def start_new(self, terminating: bool) -> None:
        """First starts of children added by start_child: at once, whatever siblings do."""
        if terminating or not self._life.tally.new_down:
            return
        with contextlib.closing(self._life.tally.down_to_run()) as down:
            for rec in list(down):
                if rec.first_start:
                    self._life.start(rec)

    def start_failed(self, rec: ChildRecord, msg: Exited) -> None:
        """A child added by start_child exited before it ever started: discard it."""
        error = msg.error or msg.kind.value
        rec.phase = Phase.DOWN
        rec.purpose = "start_failed"
        self._life.cancel(rec)
        if msg.kind is ExitKind.HANG and rec.host is not None:
            rec.host.abandon()  # it hung in on_start: never attach it, whenever it returns
        self._life.event("child_start_failed", rec, level="error", reason=error,
                         exit=msg.kind.value)  # fmt: skip
        self._discard(rec, f"agent failed to start: {error}", ChildStartError(rec.node.path, error))

    def discard_unstarted(self) -> None:
        """This incarnation is ending: children added by start_child that never started are
        not kept for the next one (their callers are told the supervisor stopped first)."""
        for rec in [r for r in self._life.children if r.first_start]:
            why = f"{self._path} stopped before {rec.id} started"
            self._discard(rec, why, SupervisorUnavailableError(why))

    def drop_dynamic(self, purpose: str) -> None:
        """This incarnation ends to be started again (it gave up, or its parent restarts it):
        as in OTP, the next one starts from the declaration, so children added by start_child
        are removed now, instead of failing again in every new incarnation."""
        if purpose not in ("escalate", "restart"):
            return
        why = f"removed: {self._path} restarted (children added by start_child are not)"
        for rec in [r for r in self._life.children if r.node.dynamic and r.phase == Phase.DOWN]:
            rec.purpose = "supervisor_restarted"
            self._discard(rec, why, SupervisorUnavailableError(why))

    def _discard(self, rec: ChildRecord, why: str, error: Exception) -> None:
        """Remove a child that is down and never started; its queued messages get `why`."""
        node = rec.node
        if isinstance(node, SupervisorNode):
            node.state = NodeState.STOPPED
            for slot in self._life.tree.agents_under(node):  # DOWN if it gave up: answer now
                slot.set_state(SlotState.REMOVED, why)
        elif isinstance(node, AgentSlot):
            node.set_state(SlotState.REMOVED, why)
        self._life.remove(rec, error)
