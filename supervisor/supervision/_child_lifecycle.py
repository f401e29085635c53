"""ChildLifecycle: a supervisor incarnation's children and the effects it has on them: start
one (a host or a child supervisor actor), stop one (it finishes its current message; abandoned
after its shutdown_timeout), remove one, and the timers and events that go with them.

It owns the list of child records. The decisions of when to do which are SupervisorActor's
(its reconcile loop and the pure strategies.plan_exit); this part only carries them out, and
knows nothing of the actor but how to post it a message and start a child supervisor."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors import ExecutionStatus, FailureReason

from .._events import emit
from .._exceptions import ChildStartError
from ..delivery._messages import Shutdown, TimerFired
from ..delivery._slot import AgentSlot, SlotState, give_up
from ..hosts._launch import (
    launch_host,
    loop_of,
    start_due,
    starts_in_order,
    stops_in_order,
    task_batch,
)
from ._child_record import ChildRecord, settle
from ._child_tally import ChildTally
from ._node import SupervisorNode
from ._states import NodeState, Phase

if TYPE_CHECKING:
    from ..hosts._task_loop import TaskLoop
    from ._tree import TreeIndex

__all__ = ["ChildLifecycle"]

SpawnSupervisor = Callable[[SupervisorNode, int], None]
STEP = 256  # task agents started (or stopped) in one step, before the supervisor reads on


class ChildLifecycle:
    """The children of one supervisor incarnation (`node`), in declaration order."""

    def __init__(
        self,
        node: SupervisorNode,
        tree: TreeIndex,
        post: Callable[[Any], None],
        spawn_supervisor: SpawnSupervisor,
    ) -> None:
        self.node = node
        self.tree = tree
        self._post = post
        self._spawn_supervisor = spawn_supervisor
        self._scheduler = tree.runtime.scheduler
        self.tally = ChildTally()
        self.children: list[ChildRecord] = []
        self._near: TaskLoop | None = None  # the loop of the last declared task agent started
        self._batch_watch: dict[float, list[tuple[Any, int]]] = {}  # see arm_batch
        self._by_node: dict[int, ChildRecord] = {}  # id(node) -> its record
        for child in node.children:
            self.add(ChildRecord(child))

    def find(self, node: Any, gen: int) -> ChildRecord | None:
        """The record of `node` if `gen` is the incarnation it is on (older reports are stale)."""
        rec = self.record_of(node)
        return rec if rec is not None and rec.gen == gen else None

    def record_of(self, node: Any) -> ChildRecord | None:
        rec = self._by_node.get(id(node))
        return rec if rec is not None and rec.node is node else None

    def add(self, rec: ChildRecord) -> None:
        self.children.append(rec)
        self._by_node[id(rec.node)] = rec
        self.tally.enrol(rec)
        rec.tally = self.tally

    def start(self, rec: ChildRecord) -> bool:
        """Start a child; True when the next task agent may be started at once, not after
        this one reported Started (declared task agents share a loop, which runs their
        starts in declaration order)."""
        rec.not_before = None
        rec.phase = Phase.STARTING
        node = rec.node
        in_order = False
        if isinstance(node, AgentSlot):
            rec.gen = node.new_generation()
            node.set_state(SlotState.STARTING)
            declared = not rec.first_start
            near = self._near if declared else None
            host = rec.host = launch_host(node, rec.gen, near)
            if declared and starts_in_order(host, near):
                self._near = loop_of(host)
                in_order = True
            timeout = node.spec.start_timeout
        else:
            node.generation += 1
            rec.gen = node.generation
            self._spawn_supervisor(node, rec.gen)
            timeout = None
        if timeout is not None and in_order:  # one timer for the whole step: arm_batch
            self._batch_watch.setdefault(timeout, []).append((node, rec.gen))
        elif timeout is not None:
            self.arm(rec, "start_timeout", timeout)
        return in_order

    def start_step(self, now: float) -> bool:
        """Start the first child, in declaration order, that is down and should run (not in
        its restart backoff, not held for abandoned handlers), and the declared task agents
        right after it, up to STEP; True if any started."""
        started = 0
        with contextlib.closing(self.tally.down_to_run()) as down, task_batch():
            for rec in down:
                if rec.not_before is not None and now < rec.not_before:
                    continue
                if started and not self.joins_batch(rec):
                    break
                if self.held_for_abandoned(rec):
                    continue  # retried when one of its abandoned threads ends
                started += 1
                if not self.start(rec) or started >= STEP:
                    break
        if started:
            self.arm_batch()
        return started > 0

    def stop_step(self, rec: ChildRecord, purpose: str, terminating: bool) -> None:
        """Stop `rec`; when the supervisor terminates, the task agents up before it on the
        same loop too (up to STEP: their stops run in reverse declaration order there)."""
        with task_batch():
            self.stop(rec, purpose)
            if not terminating:
                return
            for _ in range(STEP - 1):
                then = self.tally.last_up()
                if then is None or not stops_in_order(rec.host, then.host):
                    return
                self.stop(then, purpose)
                rec = then

    def start_not_late(self, rec: ChildRecord) -> bool:
        """At a start_timeout: is rec's start not late yet? (A task agent's start counts from
        when it began on its loop, not from its step: then a timer is armed for that.)"""
        node, host = rec.node, rec.host
        if not isinstance(node, AgentSlot) or node.spec.start_timeout is None:
            return False
        due = start_due(host, node.spec.start_timeout, self._scheduler.clock.now())
        if due is None:
            return False
        gen = rec.gen
        rec.timer = self._scheduler.call_at(
            due, functools.partial(self._post, TimerFired("start_timeout", node, gen))
        )
        return True

    def arm_batch(self) -> None:
        """The start_timeout of the task agents started in this step: one timer for all that
        have the same timeout (the ones that have started by then are skipped)."""
        batches, self._batch_watch = self._batch_watch, {}
        for seconds, started in batches.items():
            fired = TimerFired("start_timeout", None, 0, tuple(started))
            self._scheduler.call_later(seconds, functools.partial(self._post, fired))

    @staticmethod
    def joins_batch(rec: ChildRecord) -> bool:
        """May rec start right after a task agent started in order (see start)?"""
        node = rec.node
        return isinstance(node, AgentSlot) and node.spec.isolation == "task" and not rec.first_start

    def held_for_abandoned(self, rec: ChildRecord) -> bool:
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
            self.event("agent_abandoned_limit", rec, level="error", reason=why,
                       abandoned=running)  # fmt: skip
        return True

    def stop(self, rec: ChildRecord, purpose: str) -> None:
        """Ask a running or starting child to stop, for `purpose` (restart, remove, shutdown,
        escalate, fail); it reports Stopped (or Exited) when it is down."""
        rec.purpose = purpose
        rec.phase = Phase.STOPPING
        node = rec.node
        self.event("child_stopping", rec, reason=purpose)
        if isinstance(node, AgentSlot):
            state = SlotState.DOWN if purpose == "escalate" else SlotState.STOPPING
            host = rec.host
            if host is not None:
                node.detach(host)
                node.set_state(state)
                host.request_stop()
            else:
                node.set_state(state)
            self.arm(rec, "shutdown_timeout", node.spec.shutdown_timeout)
        else:
            node.state = NodeState.TERMINATING
            node.post(Shutdown(purpose))
            if node.spec.shutdown_timeout is not None:
                self.arm(rec, "shutdown_timeout", node.spec.shutdown_timeout)

    def abandon_hung(self, rec: ChildRecord, error: str | None) -> None:
        """A child hung (past a deadline, or its start): its host is abandoned (killed
        where it can be) and never answers again."""
        if rec.host is not None:
            rec.host.abandon()
            self.event("child_abandoned", rec, level="warning", reason=error)

    def abandon_stopping(self, rec: ChildRecord) -> None:
        """A child did not stop within its shutdown_timeout: give up on it (its host is
        abandoned, killed where it can be; the message it was still running is answered, and
        stays pending in a durable mailbox); it counts as down."""
        if rec.host is not None:
            current = rec.host.abandon()  # the message it was still running, if any
            if current is not None:
                current.keep_pending = current.seq is not None  # durable: not handled
                give_up(
                    current,
                    ExecutionStatus.FAILURE,
                    "abandoned: did not finish within shutdown_timeout",
                    rec.node.path,
                    FailureReason.DEADLINE,
                )
        self.event("child_abandoned", rec, level="warning", reason="shutdown_timeout")
        rec.phase = Phase.DOWN

    def set_down(self, rec: ChildRecord, purpose: str) -> None:
        settle(rec.node, purpose, self.node.path)

    def remove(self, rec: ChildRecord, start_error: Exception | None = None) -> None:
        """Forget a child that is down: out of this supervisor and the tree index, its queue
        answered. A start_child still waiting for it gets start_error (default: a stop_child
        removed it first)."""
        self.children.remove(rec)
        self._by_node.pop(id(rec.node), None)
        rec.tally = None
        self.tally.withdraw(rec)
        self.set_down(rec, "remove")
        self.tree.remove_child(self.node, rec.node)
        self.event("child_removed", rec, reason=rec.purpose)
        rec.resolve_started(
            start_error or ChildStartError(rec.node.path, "removed by stop_child before it started")
        )
        rec.resolve_removed()
        self.cancel(rec)
        rec.host = None

    def event(self, event: str, rec: ChildRecord, level: str = "info", **fields: Any) -> None:
        """A lifecycle event about one child, with the keys every supervisor report has."""
        node = rec.node
        emit(event, level=level, supervisor=self.node.path, child=node.id, path=node.path,
             agent_id=node.id, **fields)  # fmt: skip

    def arm(self, rec: ChildRecord, what: str, seconds: float) -> None:
        """A timer for this child's current incarnation; it reaches the actor as TimerFired."""
        gen = rec.gen
        rec.timer = self._scheduler.call_later(
            seconds, lambda: self._post(TimerFired(what, rec.node, gen))
        )

    def cancel(self, rec: ChildRecord) -> None:
        if rec.timer is not None:
            rec.timer.cancel()
            rec.timer = None
