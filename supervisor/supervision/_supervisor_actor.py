"""SupervisorActor: one incarnation of a supervisor node, as a pykka actor.

It only reacts to messages (a child started, exited or stopped; a timer fired; a request to
start, stop or shut down) and never waits on a child. Its decisions come from the pure
strategies.plan_exit(); carrying them out is a reconcile loop over per-child records:

0. a child added by start_child starts at once (_dynamic_children.py: its first start waits
   for no sibling, and if it fails the child is discarded, not restarted);
1. at most one child is stopping at a time, in reverse declaration order (when terminating,
   task agents of one loop stop up to 256 per step: stop_step);
2. children marked for removal are removed once down;
3. when terminating (escalation or shutdown) and everything is down, report and end;
4. children (re)start in declaration order (skipping backoffs), one per step and each after
   the previous one's report; declared task agents up to 256 per step, on one loop, which
   runs their starts in that order (_child_lifecycle.py: start_step);
5. when the initial start is complete, report Started to the parent.

A new incarnation (its parent restarted it) starts with a fresh restart budget.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pykka

from strategies import (
    ChildInfo,
    ExitKind,
    RestartWindow,
    next_backoff,
    plan_exit,
)

from .._events import emit
from .._exceptions import SupervisorUnavailableError
from ..delivery._messages import (
    Adopt,
    Exited,
    Passivate,
    Reconcile,
    Reports,
    Shutdown,
    StartChild,
    Started,
    StopChild,
    Stopped,
    TimerFired,
    Wake,
)
from ..delivery._slot import AgentSlot
from ..hosts._outcome import describe
from . import _passivation as passivation
from ._child_lifecycle import ChildLifecycle
from ._child_record import ChildRecord
from ._dynamic_children import DynamicChildren
from ._exit_answers import answer_exit
from ._node import SupervisorNode
from ._states import Mode, NodeState, Phase, Want

if TYPE_CHECKING:
    from ._tree import TreeIndex

__all__ = ["SupervisorActor"]


class SupervisorActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, node: SupervisorNode, gen: int, tree: TreeIndex) -> None:
        super().__init__()
        self.node = node
        self.gen = gen
        self.tree = tree
        self.runtime = tree.runtime
        self.clock = tree.runtime.clock
        self.strategy = node.spec.strategy
        self.window = RestartWindow(self.strategy.within_seconds)
        self.mode = Mode.STARTING  # starting | running | terminating | dead
        self.purpose = "shutdown"
        self.reason: str | None = None
        self.life = ChildLifecycle(node, tree, self._post, self._spawn_supervisor)
        self.dynamic = DynamicChildren(self.life)
        self._deferred: list[Exited] = []

    @property
    def children(self) -> list[ChildRecord]:
        return self.life.children

    @property
    def terminating(self) -> bool:
        return self.mode == Mode.TERMINATING

    @classmethod
    def launch(cls, node: SupervisorNode, gen: int, tree: TreeIndex) -> SupervisorActor:
        actor = cls(node, gen, tree)
        node.actor = actor
        node.state = NodeState.STARTING
        actor._start_actor_loop()
        actor.actor_ref.tell(Reconcile())
        return actor

    def _spawn_supervisor(self, node: SupervisorNode, gen: int) -> None:
        SupervisorActor.launch(node, gen, self.tree)

    def _post(self, message: Any) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    # -- messages ----------------------------------------------------------------------------

    def on_stop(self) -> None:
        """Requests that reached this incarnation as it ended are answered, not dropped (pykka
        drops tells left in the inbox): start_child / stop_child fail at once."""
        inbox = self.actor_inbox
        while self.mode == Mode.DEAD and not inbox.empty():
            self.on_receive(inbox.get().message)

    def on_receive(self, message: Any) -> Any:
        try:
            self._receive(message)
        except Exception as exc:  # noqa: BLE001 - a supervisor never dies silently
            self._internal_error(exc)
        return None

    def _internal_error(self, exc: Exception) -> None:
        """A bug or a broken hook inside the supervisor: like an OTP supervisor crashing, it
        gives up on its children and escalates, so its parent restarts the subtree."""
        reason = f"supervisor {self.node.path} crashed: {describe(exc)}"
        emit(
            "supervisor_crashed",
            level="error",
            supervisor=self.node.path,
            child=None,
            path=self.node.path,
            agent_id=self.node.id,
            reason=reason,
        )
        if self.mode == Mode.DEAD:
            return
        try:
            self._terminate("escalate", reason)
            self.purpose = "escalate"
            self._reconcile()
        except Exception:  # noqa: BLE001 - last resort: report and stop
            self.mode = Mode.DEAD
            self.node.state = NodeState.DOWN
            self.node.report(Exited(self.node, self.gen, ExitKind.ESCALATED, None, reason))
            self.stop()

    def _receive(self, message: Any) -> Any:
        if self.mode == Mode.DEAD:
            if isinstance(message, Exited):
                self._answer_failed(message)
            elif isinstance(message, (StartChild, StopChild)) and not message.future.done():
                gone = SupervisorUnavailableError(f"supervisor {self.node.path} has stopped")
                message.future.set_exception(gone)
            return None
        if isinstance(message, Reports):
            for report in message.reports:
                self._dispatch(report)
        else:
            self._dispatch(message)
        self._reconcile()
        return None

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, Started):
            self._on_started(message)
        elif isinstance(message, Exited):
            self._on_exited(message)
        elif isinstance(message, Stopped):
            self._on_stopped(message)
        elif isinstance(message, TimerFired):
            self._on_timer(message)
        elif isinstance(message, Shutdown):
            self._terminate(message.purpose, None)
        elif isinstance(message, StartChild):
            self.dynamic.on_start_child(message, self.terminating)
        elif isinstance(message, StopChild):
            self.dynamic.on_stop_child(message)
        elif isinstance(message, Adopt):
            self.dynamic.on_adopt(message, self.terminating)
        elif isinstance(message, (Passivate, Wake)):
            self._on_idle_change(message)

    def _on_idle_change(self, msg: Passivate | Wake) -> None:
        rec = self.life.record_of(msg.child)
        if rec is None or self.terminating:
            return
        if isinstance(msg, Passivate):
            passivation.passivate(rec, msg.child, msg.gen, self.clock.now())
        else:
            passivation.wake(rec, msg.child)

    def _on_started(self, msg: Started) -> None:
        rec = self.life.find(msg.child, msg.gen)
        if rec is None or rec.phase != Phase.STARTING:
            return
        rec.phase = Phase.RUNNING
        rec.first_start = False
        self.life.cancel(rec)
        self.life.event("child_started", rec, reason=None, generation=rec.gen)
        if isinstance(rec.node, AgentSlot):
            passivation.watch(rec.node, rec.gen)
        for fut in rec.started_waiters:
            if not fut.done():
                fut.set_result(rec.node.path)
        rec.started_waiters.clear()

    def _on_exited(self, msg: Exited) -> None:
        rec = self.life.find(msg.child, msg.gen)
        if rec is None or rec.phase == Phase.DOWN:
            self._answer_failed(msg)
            return
        was = rec.phase
        if rec.first_start and was is Phase.STARTING and self.mode != Mode.TERMINATING:
            self.dynamic.start_failed(rec, msg)  # OTP: a child that fails to start is not kept
            return
        rec.phase = Phase.DOWN
        rec.restart_pending = False  # it is down now: the plan below decides its restart
        self.life.cancel(rec)
        if msg.kind is ExitKind.HANG:
            self.life.abandon_hung(rec, msg.error)
        self.life.event(
            "child_exited",
            rec,
            level="info" if msg.kind is ExitKind.NORMAL else "warning",
            reason=msg.error,
            exit=msg.kind.value,
        )
        if was is Phase.STOPPING or self.mode == Mode.TERMINATING:
            self._after_stop(rec)
        else:
            self._plan(rec, msg.kind, msg.error)
        self._reconcile()  # apply the strategy first, then answer the caller
        if self.mode == Mode.TERMINATING:
            # an escalation (or shutdown) is in progress: answer once it has been reported
            self._deferred.append(msg)
        else:
            self._answer_failed(msg)

    def _plan(self, rec: ChildRecord, kind: ExitKind, error: str | None) -> None:
        now = self.clock.now()
        alone = self.strategy.independent  # the plan concerns rec only (escalating: all, below)
        group = [rec] if alone else self.children
        infos = [ChildInfo(r.id, r.node.spec.restart) for r in group]
        plan = plan_exit(self.strategy, infos, rec.id, kind, self.window.prune(now))
        if plan.counted:
            self.node.budget_used = self.window.add(now)
        if plan.escalate:
            reason = (
                f"restart budget exhausted: more than {self.strategy.max_restarts} restarts "
                f"in {self.strategy.within_seconds}s (last: {rec.node.path}: {error})"
            )
            node = self.node
            emit("supervisor_budget_exhausted", level="error", supervisor=node.path,
                 child=rec.node.id, path=node.path, agent_id=node.id, reason=reason)  # fmt: skip
            self.life.set_down(rec, "escalate")
            self._terminate("escalate", reason)
            return
        by_id = {r.id: r for r in group}
        for cid in plan.stop:
            sib = by_id[cid]
            if sib.phase in (Phase.RUNNING, Phase.STARTING) and sib.want != Want.REMOVE:
                sib.restart_pending = True
        for cid in plan.remove:
            by_id[cid].want = Want.REMOVE
        # a child being removed (stop_child) stays removed, whatever its siblings do
        restarting = [cid for cid in plan.restart if by_id[cid].want != Want.REMOVE]
        delay = 0.0
        if plan.restart and self.strategy.backoff is not None:
            delay, rec.backoff = next_backoff(
                self.strategy.backoff, rec.backoff, now, self.runtime.rng.random()
            )
        for cid in restarting:
            target = by_id[cid]
            target.want = Want.RUN
            target.not_before = now + delay if delay > 0 else None
            if isinstance(target.node, AgentSlot):
                target.node.stats.restarts += 1
            else:
                target.node.restarts += 1
        if delay > 0:  # armed before the event below: who sees the event may move the clock
            self.runtime.scheduler.call_later(delay, lambda: self._post(Reconcile()))
        if rec.id in restarting:
            self.life.event(
                "child_restarting",
                rec,
                reason=error,
                delay=delay,
                strategy=self.strategy.name,
                group=restarting,
            )
            self.life.set_down(rec, "backoff" if delay > 0 else "restart")
        elif rec.want == Want.REMOVE:  # temporary, or a stop_child in progress: removed once down
            self.life.set_down(rec, "remove")
        else:
            rec.want = Want.STOP
            self.life.set_down(rec, "shutdown")

    def _on_stopped(self, msg: Stopped) -> None:
        rec = self.life.find(msg.child, msg.gen)
        if rec is None or rec.phase == Phase.DOWN:
            return
        rec.phase = Phase.DOWN
        self.life.cancel(rec)
        self.life.event("child_stopped", rec, reason=rec.purpose)
        self._after_stop(rec)

    def _after_stop(self, rec: ChildRecord) -> None:
        """A child is down after a stop we asked for (or it crashed while stopping)."""
        if self.mode == Mode.TERMINATING:
            purpose = self.purpose
        elif rec.restart_pending:
            rec.restart_pending = False
            purpose = "backoff" if rec.not_before else "restart"
        else:
            purpose = rec.purpose
        self.life.set_down(rec, purpose)
        if purpose == "passivate" and isinstance(rec.node, AgentSlot):
            passivation.passivated(rec, rec.node)

    def _on_timer(self, msg: TimerFired) -> None:
        if msg.batch:
            for child, gen in msg.batch:
                self._on_timer(TimerFired(msg.what, child, gen))
            return
        rec = self.life.find(msg.child, msg.gen)
        if rec is None:
            return
        if msg.what == "start_timeout" and rec.phase == Phase.STARTING:
            if self.life.start_not_late(rec):
                return  # queued behind its siblings' starts: checked again later
            limit = rec.node.spec.start_timeout if isinstance(rec.node, AgentSlot) else None
            error = f"start exceeded start_timeout={limit}s"
            self._on_exited(Exited(rec.node, rec.gen, ExitKind.HANG, None, error))
        elif msg.what == "shutdown_timeout" and rec.phase == Phase.STOPPING:
            self.life.abandon_stopping(rec)
            self._after_stop(rec)

    # -- carrying decisions out ---------------------------------------------------------------

    def _reconcile(self) -> None:
        """One step towards what the records want (see the module docstring). Each question
        is asked of the tally, so a message costs O(log n), not a scan of every child."""
        if self.mode == Mode.DEAD:
            return
        tally = self.life.tally
        self.dynamic.start_new(self.terminating)
        if tally.stopping:
            return
        stop = self._next_to_stop()
        if stop is not None:
            self.life.stop_step(stop, self._stop_purpose(stop), self.mode == Mode.TERMINATING)
            return
        if tally.remove_down:
            for rec in [
                r for r in self.children if r.want == Want.REMOVE and r.phase == Phase.DOWN
            ]:
                self.life.remove(rec)
        if self.mode == Mode.TERMINATING:
            self._finish_termination()
            return
        if tally.restarting:
            return
        if self.life.start_step(self.clock.now()):
            return
        if self.mode == Mode.STARTING and all(
            r.phase == Phase.RUNNING or r.held for r in self.children if r.want == Want.RUN
        ):
            self.mode = Mode.RUNNING
            self.node.state = NodeState.RUNNING
            self.node.report(Started(self.node, self.gen))

    def _terminate(self, purpose: str, reason: str | None) -> None:
        if self.mode == Mode.TERMINATING:
            return
        self.mode = Mode.TERMINATING
        self.purpose = purpose
        self.reason = reason
        self.node.state = NodeState.TERMINATING

    def _finish_termination(self) -> None:
        self.mode = Mode.DEAD
        node = self.node
        self.dynamic.discard_unstarted()
        self.dynamic.drop_dynamic(self.purpose)
        for rec in self.children:
            rec.resolve_started(
                SupervisorUnavailableError(f"{node.path} stopped before {rec.id} started")
            )
            rec.resolve_removed()
        if self.purpose == "escalate":
            node.state = NodeState.DOWN
            node.escalations += 1
            node.last_error = self.reason
            emit(
                "supervisor_escalated",
                level="error",
                supervisor=node.path,
                child=node.id,
                path=node.path,
                agent_id=node.id,
                reason=self.reason,
            )
            node.report(Exited(node, self.gen, ExitKind.ESCALATED, None, self.reason))
        else:
            node.state = NodeState.FAILED if self.purpose == "fail" else NodeState.STOPPED
            node.report(Stopped(node, self.gen))
        if node.actor is self:
            node.actor = None
        for exited in self._deferred:
            self._answer_failed(exited)
        self._deferred.clear()
        self.stop()

    # -- helpers ---------------------------------------------------------------------------

    def _next_to_stop(self) -> ChildRecord | None:
        """The last child, in declaration order, that is up and should not be: when
        terminating, any that is up; otherwise one to remove, stop or restart."""
        tally = self.life.tally
        if self.mode == Mode.TERMINATING:
            return tally.last_up()
        if not tally.to_stop:
            return None
        for rec in reversed(self.children):
            if rec.phase in (Phase.RUNNING, Phase.STARTING) and (
                rec.want != Want.RUN or rec.restart_pending
            ):
                return rec
        return None

    def _stop_purpose(self, rec: ChildRecord) -> str:
        if self.mode == Mode.TERMINATING:
            return self.purpose
        if rec.restart_pending:
            return "restart"
        if rec.passivating and rec.want == Want.STOP:
            return "passivate"
        return "remove" if rec.want == Want.REMOVE else "shutdown"

    def _answer_failed(self, msg: Exited) -> None:
        answer_exit(self.runtime, msg.child, msg.kind, msg.env, msg.error, msg.reason)

    def restarts_in_window(self) -> int:
        """For health snapshots (another thread): counts without changing the window."""
        return self.window.count(self.clock.now())
