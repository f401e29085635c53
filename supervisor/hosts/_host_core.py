"""HostCore: what every host of one agent incarnation is and does, whatever carries its
messages (a pykka thread of its own, ThreadHost; a task on a shared event loop, TaskHost).

A host is the small, replaceable part: it builds the agent (through its runner), takes
messages from its slot's mailbox, runs handle(), answers, and reports started / exited /
stopped to its supervisor. It decides nothing about restarts.

Failure path, written plainly:
- an exception (any BaseException) in __init__/on_start/handle: this instance crashed. It
  detaches from its slot (queued messages stay there for the replacement), counts a breaker
  failure, reports Exited(CRASH) with the message that crashed it, and ends.
- a handler overrunning its message deadline: the watchdog (check_overrun, on the timer
  thread) detaches it and reports Exited(HANG); the supervisor abandons it. What runs the
  handler finishes in the background; a late result is discarded.
"""

from __future__ import annotations

import abc
import threading
import time
from contextvars import Token
from typing import TYPE_CHECKING, Any

from actors import ExecutionResult, ExecutionStatus, FailureReason
from actors._current import MessageContext, current_message
from strategies import ExitKind

from .._events import emit
from ..delivery._breaker import DeadlineExceeded
from ..delivery._messages import Exited, Reconcile, Started, Stopped
from ._outcome import RemoteCrash, answer, breaker_failure, describe

if TYPE_CHECKING:
    from .._scheduler import Timer
    from ..delivery._durable import AgentDurability
    from ..delivery._envelope import Envelope
    from ..delivery._slot import AgentSlot
    from ._runner import AgentRunner

__all__ = ["HostCore"]

_RUNS_ON = frozenset({"thread", "task"})  # an abandoned handler of these runs on (no kill)
_PASSED_ON = frozenset({"failure", "timeout", "invalid_output"})  # down the fallback chain


class HostCore(abc.ABC):
    """Invariants: `current` is the message its handler is running (None between messages);
    once `hung`, `crashed` or `abandoned` is set the host never answers again; `finished` is
    set when what carries it (its thread, its task) is about to end."""

    runner: AgentRunner
    thread: threading.Thread | None = None  # a thread of its own to join at shutdown

    def __init__(self, slot: AgentSlot, gen: int) -> None:
        self.slot = slot
        self.gen = gen
        self.current: Envelope | None = None
        self.current_deadline: float | None = None
        self.armed_at: float | None = None
        self.crashed = False
        self.hung = False
        self.abandoned = False
        self.finished = False
        self.stop_requested = False  # the agent asked to stop (context.stop())
        self.stopping = False  # its supervisor asked it to stop
        self.counted_abandoned = False  # its thread counts in the slot's abandoned_running
        self.watchdog: Timer | None = None  # the armed deadline check (cancelled at the end)

    def _enrol(self) -> None:
        """Count this host among its slot's live ones (before it starts)."""
        slot = self.slot
        with slot.lock:
            slot.hosts = [h for h in slot.hosts if not h.finished]
            slot.hosts.append(self)

    # -- what each kind of host does its own way -------------------------------------------

    @abc.abstractmethod
    def wake(self) -> None:
        """Its slot has messages for it (any thread): drain them soon."""

    @abc.abstractmethod
    def request_stop(self) -> None:
        """Finish the current message, run on_stop, report Stopped (any thread). A host still
        starting then never attaches itself to its slot (see AgentSlot.activate)."""

    @abc.abstractmethod
    def worker_died(self, error: str) -> None:
        """The runner's process ended on its own (the reaper's thread): a crash."""

    # -- called from other threads ---------------------------------------------------------

    def abandon(self, reason: str = "deadline") -> Envelope | None:
        """Give up on this host: it will never answer again; its runner is killed where that
        can be done (a worker process), else its handler ends when it can. Returns the message
        it was running, if any, now the caller's to answer (taken under the slot lock: the
        host can no longer answer it, so nobody answers it twice)."""
        with self.slot.lock:
            if self.abandoned:
                return None
            self.abandoned = True
            in_flight = None if self.hung else self.current
            self.current = None
            # decided with `finished` under the lock, so _ending counts it down exactly once
            if not self.finished and self.runner.isolation in _RUNS_ON:
                self.counted_abandoned = True
                self.slot.stats.count_abandoned(+1, new=True)
        self.slot.detach(self)
        self.runner.kill(reason)
        self.request_stop()
        return in_flight

    def begin_locked(self, env: Envelope, now: float, timeout: float | None) -> float | None:
        """env is this host's message now (its slot's lock is held): its handler deadline, and
        when the watchdog must be armed (None: armed already for an earlier deadline)."""
        self.current = env
        if timeout is None:
            return None
        self.current_deadline = now + timeout
        if self.armed_at is not None:
            return None
        self.armed_at = self.current_deadline
        return self.armed_at

    def heartbeat(self) -> None:
        """The running handler shows progress: its handler deadline moves to now +
        message_timeout (the watchdog re-arms itself for the new deadline when the old one
        comes). Ignored between messages and once the handler was given up on."""
        slot = self.slot
        timeout = slot.spec.message_timeout
        with slot.lock:
            if self.current is None or self.hung or self.abandoned or self.crashed:
                return
            if timeout is not None:
                self.current_deadline = slot.runtime.clock.now() + timeout
        slot.stats.beat()

    def time_left(self) -> float | None:
        """Seconds until the running message's nearer deadline (the handler's or the
        caller's), None when it has none or no message runs."""
        env = self.current
        if env is None:
            return None
        deadlines = [d for d in (self.current_deadline, env.deadline) if d is not None]
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - self.slot.runtime.clock.now())

    def _arm(self, when: float) -> None:
        """Arm the deadline check at `when`, and remember it, to cancel it when the host ends
        (its callback holds this host); a host that ended meanwhile cancels it at once."""
        timer = self.slot.runtime.scheduler.call_at(when, self.check_overrun)
        with self.slot.lock:
            ended = self.finished
            if not ended:
                self.watchdog = timer
        if ended:
            timer.cancel()

    def _overran(self) -> None:
        """The running handler is overdue (the host is hung now): stop it if it can be."""
        self.runner.cancel()

    def check_overrun(self) -> None:
        """Watchdog callback (timer thread) at the earliest deadline this host armed."""
        slot = self.slot
        now = slot.runtime.clock.now()
        with slot.lock:
            self.armed_at = None
            env = self.current
            if env is None or self.hung or self.abandoned or self.crashed:
                return
            deadline = self.current_deadline
            if deadline is not None and now < deadline:
                self.armed_at = deadline
                rearm = True
            else:
                rearm = False
                self.hung = True
                slot.lose_locked(self)
                tripped = breaker_failure(slot, env, DeadlineExceeded("message deadline"))
        if rearm:
            self._arm(deadline)  # type: ignore[arg-type]
            return
        self._overran()
        error = f"handler exceeded message_timeout={slot.spec.message_timeout}s"
        slot.stats.failed("timeout", error)
        if tripped:
            slot.divert_queue(
                ExecutionStatus.REJECTED, "circuit opened", FailureReason.BREAKER_OPEN
            )
        self._report(Exited(slot, self.gen, ExitKind.HANG, env, error))

    # -- on what carries the host ----------------------------------------------------------

    def _start_agent(self) -> bool:
        """Build the agent and run its on_start; True when it runs and took its slot (it
        reported Started), False when it crashed (reported) or was superseded."""
        slot = self.slot
        try:
            self.runner.start()
        except BaseException as exc:  # noqa: BLE001 - a crash at start, of this agent only
            self.crashed = True
            slot.detach(self)
            slot.stats.failed("start", describe(exc))
            reason = exc.reason if isinstance(exc, RemoteCrash) else None
            self._report(Exited(slot, self.gen, ExitKind.CRASH, None, describe(exc), reason))
            return False
        slot.stats.started_at = time.time()
        if slot.activate(self):
            self._report(Started(slot, self.gen))
            return True
        return False

    def _enter(self, env: Envelope) -> tuple[Token[MessageContext | None], float]:
        """env's handler is about to run: its message context (for the agent's logs and its
        own asks) set, and when it started."""
        slot = self.slot
        token = current_message.set(
            MessageContext(slot.path, slot.id, env.trace_id, env.msg_id, (*env.chain, slot.path))
        )
        return token, time.perf_counter()

    def _begin_durable(self, env: Envelope) -> None:
        """A durable agent's message is recorded as begun (its caller checks `durability`
        first: a call less per message for every other agent)."""
        durability = self.slot.durability
        if durability is not None and env.seq is not None and not env.begun:
            durability.begin(env, self.slot.queued_behind())

    def _leave(
        self,
        env: Envelope,
        entered: tuple[Token[MessageContext | None], float],
        outcome: Any = None,
        crash: BaseException | None = None,
    ) -> bool:
        """env's handler returned `outcome` or raised `crash`: its context reset, the caller
        answered (or the crash path taken); False when this host takes no more messages."""
        token, started = entered
        elapsed = time.perf_counter() - started
        current_message.reset(token)
        if crash is not None:
            self._crash(env, crash)
            return False
        # answer it, unless the host was given up on meanwhile (a late result is discarded)
        slot = self.slot
        with slot.lock:
            self.current = None
            late = self.hung or self.abandoned
        if late:
            emit(
                "late_result_discarded",
                path=slot.path,
                agent_id=slot.id,
                trace_id=env.trace_id,
                message_id=env.msg_id,
                reason="handler overran its deadline",
            )
            return False
        try:  # what the handler returned is the agent's too: garbage crashes this host only
            status = outcome.status.value if isinstance(outcome, ExecutionResult) else "success"
            slot.stats.handled(elapsed, status)
            if slot.durability is not None:
                self._keep(env, status, slot.durability)
            answer(slot, env, outcome)
        except BaseException as exc:  # noqa: BLE001 - answered (or retried) by the crash path
            self._crash(env, exc)
            return False
        return True

    def _keep(self, env: Envelope, status: str, durability: AgentDurability) -> None:
        """After a message the agent handled: save its state if it changed, and acknowledge
        the message with it (a failure it returned is acknowledged once answered)."""
        state = self.runner.state_to_save(durability) if durability.persist else None
        durability.last_active = self.slot.runtime.clock.now()
        if status in _PASSED_ON:  # acknowledged once answered, with this state
            env.state = state
        else:
            durability.settle(env, state)

    def _crash(self, env: Envelope | None, exc: BaseException) -> None:
        """This instance crashed (env: the message it was handling, if any). If the watchdog
        or the supervisor already gave up on it (hung, abandoned), that message is theirs to
        answer and this is only the late end of an abandoned handler."""
        slot = self.slot
        error = describe(exc)
        with slot.lock:
            late = self.hung or self.abandoned or self.crashed
            self.current = None
            if late:
                tripped = False
            else:
                self.crashed = True
                slot.lose_locked(self)
                tripped = env is not None and breaker_failure(slot, env, exc)
        if late:  # it ends once the supervisor's stop request arrives
            return
        slot.stats.failed("crash", error)
        emit(
            "agent_crashed",
            level="warning",
            supervisor=slot.parent.path,
            child=slot.id,
            path=slot.path,
            agent_id=slot.id,
            reason=error,
            trace_id=env.trace_id if env is not None else None,
            message_id=env.msg_id if env is not None else None,
        )
        if tripped:
            slot.divert_queue(
                ExecutionStatus.REJECTED, "circuit opened", FailureReason.BREAKER_OPEN
            )
        reason = exc.reason if isinstance(exc, RemoteCrash) else None
        self._report(Exited(slot, self.gen, ExitKind.CRASH, env, error, reason))
        self._end_crashed()

    def _end_crashed(self) -> None:
        """End this crashed host at once (no on_stop for a crashed instance, nothing to
        drain: the slot owns the mailbox)."""
        self._ending(None)

    def _ending(self, report: Stopped | None) -> None:
        """The one way out of a host (its orderly stop, or the end of a crashed one): forget
        the host, send `report`, release its runner, and if it had been abandoned, count its
        thread as gone (an agent held down for it may start again)."""
        with self.slot.lock:
            if self.finished:
                return
            self._finish_locked()
            counted = self.counted_abandoned
        if report is not None:
            self._report(report)
        self.runner.close()
        if counted:
            self.slot.stats.count_abandoned(-1)
            self._report(Reconcile())

    def _stop_orderly(self) -> None:
        """Its stop request arrived: run on_stop unless it crashed, hung or was abandoned."""
        orderly = not (self.crashed or self.hung or self.abandoned)
        if orderly:
            self._run_on_stop()
        self._ending(Stopped(self.slot, self.gen) if orderly else None)

    def _finish_locked(self) -> None:
        """This host is ending: forget it (caller holds the slot lock), so a slot that
        restarts thousands of times does not keep thousands of dead hosts alive."""
        self.finished = True
        if self.watchdog is not None:  # its callback holds this host (and so the slot)
            self.watchdog.cancel()
            self.watchdog = None
        if self in self.slot.hosts:
            self.slot.hosts.remove(self)

    def _exit_normally(self) -> None:
        slot = self.slot
        with slot.lock:
            self.crashed = True  # no on_stop report: the Exited report says it all
            slot.release_locked(self)
        self._run_on_stop()
        self._report(Exited(slot, self.gen, ExitKind.NORMAL, None, "agent stopped itself"))

    def _run_on_stop(self) -> None:
        """The agent's on_stop hook; a failure in it is recorded, never raised."""
        try:
            self.runner.stop()
        except BaseException as exc:  # noqa: BLE001 - a failing on_stop hook is recorded, not raised
            self.slot.stats.failed("stop", describe(exc))

    def _report(self, message: Any) -> None:
        self.slot.parent.post(message)
