"""AgentSlot: the persistent place of one agent path in a tree.

A slot outlives the actors that host it: it owns the mailbox (so queued messages survive a
restart), the circuit breaker (so failures are counted across restarts), the fallback chain
and the counters. Hosts come and go; at most one host is attached and takes messages.

The path of one message: submit() routes it (breaker, mailbox bound, slot state) into the
queue or down the fallback chain; the attached host pops it (next_for) and answers it; when
the primary cannot, give_up() hands it to the next fallback or answers with the failure.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from enum import StrEnum
from typing import TYPE_CHECKING

from actors import ExecutionResult, ExecutionStatus, FailureReason

from .._events import emit
from ._answering import finish, give_up
from ._breaker import BreakerState, SlotBreaker
from ._durable import PREFETCH
from ._messages import Wake
from ._slot_rate import SlotRate
from ._stats import SlotStats

if TYPE_CHECKING:
    from .._spec import ChildSpec
    from ..hosts._host_core import HostCore
    from ..supervision._node import SupervisorNode
    from ._envelope import Envelope
    from ._runtime import Runtime

__all__ = ["AgentSlot", "SlotState", "finish", "give_up"]


class SlotState(StrEnum):
    STARTING = "starting"  # a host is being started; messages queue
    RUNNING = "running"  # a host is attached and takes messages
    RESTARTING = "restarting"  # between a crash and the replacement; messages queue
    BACKOFF = "backoff"  # restart delayed by backoff; fallback answers, else messages queue
    STOPPING = "stopping"  # finishing its current message before a restart; messages queue
    DOWN = "down"  # its supervisor gave up (escalated); fallback answers, else messages queue
    STOPPED = "stopped"  # stopped for good (normal exit, shutdown); messages are answered
    FAILED = "failed"  # the tree failed; fallback answers, else FAILURE at once
    REMOVED = "removed"  # deleted (temporary child, stop_child); the path is gone
    PASSIVATED = "passivated"  # stopped while idle, state saved; its next message wakes it


_QUEUEING = frozenset(
    {
        SlotState.STARTING,
        SlotState.RUNNING,
        SlotState.RESTARTING,
        SlotState.STOPPING,
        SlotState.PASSIVATED,
    }
)
_DEGRADED = frozenset({SlotState.BACKOFF, SlotState.DOWN})
_CLOSED = frozenset({SlotState.STOPPED, SlotState.FAILED, SlotState.REMOVED})


class AgentSlot:
    """Invariants: `host` is None or the one host that takes messages; every envelope in
    `queue` is unanswered; `generation` names the newest host started for this slot (older
    hosts' reports are ignored); `wake_pending` is True while the attached host has a wake-up
    coming or is draining, so a burst of submits sends one wake-up."""

    def __init__(
        self,
        path: str,
        spec: ChildSpec,
        runtime: Runtime,
        parent: SupervisorNode,
        kind: str = "agent",
    ) -> None:
        self.path = path
        self.id = spec.id
        self.spec = spec
        self.runtime = runtime
        self.parent = parent
        self.kind = kind
        self.lock = threading.Lock()
        self.queue: deque[Envelope] = deque()
        self.host: HostCore | None = None
        self.hosts: list[HostCore] = []  # every host whose thread may still run
        self.generation = 0
        self.wake_pending = False
        self.state = SlotState.STARTING
        self.stats = SlotStats()
        self.fallbacks: tuple[AgentSlot, ...] = ()
        self.retrying: set[Envelope] = set()  # crashed messages waiting to be re-delivered
        self.breaker = (
            SlotBreaker(spec.breaker, runtime.clock, path, self._breaker_changed)
            if spec.breaker is not None
            else None
        )
        self.rate = (
            SlotRate(runtime.limiters.for_limit(spec.rate_limit), self)
            if spec.rate_limit is not None
            else None
        )
        self.held_because: str | None = None  # DOWN: too many abandoned threads still running
        self.dynamic = False  # added by start_child (not in its supervisor's declaration)
        # a durable mailbox / persisted state (None for fallbacks: theirs is the primary's)
        self.durability = runtime.durability_for(path, spec) if kind == "agent" else None

    # -- routing ---------------------------------------------------------------------------

    def submit(self, env: Envelope) -> None:
        """Route env: into the mailbox, or down the fallback chain, or answer it at once."""
        divert: tuple[ExecutionStatus, str, FailureReason] | None = None
        dropped: Envelope | None = None
        wake: HostCore | None = None
        with self.lock:
            state = self.state
            if state in _QUEUEING or (state in _DEGRADED and not self._fallback_ready()):
                reason = self.breaker.admit(env) if self.breaker is not None else None
                limit = self.spec.mailbox_size
                if reason is not None:
                    divert = (ExecutionStatus.REJECTED, reason, FailureReason.BREAKER_OPEN)
                elif self.rate is not None and self.rate.too_late(len(self.queue), env.deadline):
                    divert = (ExecutionStatus.REJECTED, self.rate.error(),
                              FailureReason.RATE_LIMITED)  # fmt: skip
                elif limit is not None and len(self.queue) >= limit:
                    if self.spec.overflow == "drop_oldest":
                        dropped = self.queue.popleft()
                        self.queue.append(env)
                    else:
                        divert = (
                            ExecutionStatus.REJECTED,
                            f"mailbox full ({limit} queued)",
                            FailureReason.MAILBOX_FULL,
                        )
                else:
                    self.queue.append(env)
                if divert is None and not self.wake_pending and self.host is not None:
                    self.wake_pending = True
                    wake = self.host
            else:
                divert = (ExecutionStatus.FAILURE, *self._refusal(state))
        if wake is not None:
            wake.wake()
        elif state is SlotState.PASSIVATED and divert is None:
            self.parent.post(Wake(self))  # its supervisor starts it again (once: it checks)
        if dropped is not None:
            self._dead_letter(
                dropped, "mailbox_overflow", f"dropped oldest: mailbox full ({limit})"
            )
            self.stats.failed("rejected", None)
            give_up(
                dropped,
                ExecutionStatus.REJECTED,
                f"dropped: mailbox full ({limit})",
                self.path,
                FailureReason.MAILBOX_FULL,
            )
        if divert is not None:
            if divert[2] is FailureReason.RATE_LIMITED:
                self.stats.failed("rate_limited", None)
            elif divert[0] is ExecutionStatus.REJECTED:
                self.stats.failed("rejected", None)
            give_up(env, divert[0], divert[1], self.path, divert[2])

    def hold_for_retry(self, env: Envelope) -> None:
        """env waits (for its retry backoff) to be re-delivered; until then it is this slot's
        to answer if the slot closes (shutdown, removal, tree failure)."""
        with self.lock:
            self.retrying.add(env)

    def redeliver(self, env: Envelope) -> None:
        """Put a message that crashed its handler back at the head of the queue (a retry).
        A retry is a delivery like any other: an open breaker keeps it from the primary."""
        wake: HostCore | None = None
        refused: tuple[ExecutionStatus, str, FailureReason] | None = None
        with self.lock:
            self.retrying.discard(env)
            if env.done:
                return
            closed_because = self._unavailable(self.state) if self.state in _CLOSED else None
            open_because = (
                self.breaker.admit(env)
                if self.breaker is not None and closed_because is None
                else None
            )
            if closed_because is not None:
                refused = (ExecutionStatus.FAILURE, closed_because, FailureReason.UNAVAILABLE)
            elif open_because is not None:
                refused = (ExecutionStatus.REJECTED, open_because, FailureReason.BREAKER_OPEN)
            else:
                self.queue.appendleft(env)
                if not self.wake_pending and self.host is not None:
                    self.wake_pending = True
                    wake = self.host
            passivated = self.state is SlotState.PASSIVATED
        if wake is not None:
            wake.wake()
        elif passivated and refused is None:
            self.parent.post(Wake(self))
        if refused is not None:
            give_up(env, refused[0], refused[1], self.path, refused[2])

    def take(self, host: HostCore) -> tuple[Envelope | None, float | None]:
        """The next message for `host`, made its current message, and the deadline at which
        the watchdog must be armed (None: already armed, or no deadline). (None, None) when
        the host is detached, the queue is empty or the head waits for a rate-limit token
        (a timer wakes the host when one is due). Messages whose ask deadline passed while
        queued are dead-lettered here, not handled; those that cannot wait for a token are
        answered REJECTED (rate_limited) or go to the fallback."""
        clock = self.runtime.clock
        timeout = self.spec.message_timeout
        while True:
            expired: Envelope | None = None
            limited: list[Envelope] = []
            with self.lock:
                if self.host is not host:
                    return None, None
                if not self.queue:
                    self.wake_pending = False
                    return None, None
                now = clock.now()
                head = self.queue[0]
                if head.deadline is not None and now >= head.deadline:
                    expired = self.queue.popleft()
                    if expired.trial and self.breaker is not None:
                        self.breaker.release_trial(expired)
                elif self.rate is not None and (wait := self.rate.take(now)) > 0.0:
                    self.queue, limited = self.rate.shed(self.queue, now, wait)
                    if self.queue:  # the rest waits for the token, woken when it is due
                        self.wake_pending = True  # meanwhile new messages send no wake-ups
                        self.rate.wake_at(now + wait)
                        if not limited:
                            return None, None
                else:
                    env = self.queue.popleft()
                    if env.stage < 0:
                        env.attempts += 1
                    env.started_at = now
                    return env, host.begin_locked(env, now, timeout)
            if expired is not None:
                self.expired(expired)
            for late in limited:
                self.stats.failed("rate_limited", None)
                assert self.rate is not None
                give_up(
                    late, ExecutionStatus.REJECTED, self.rate.error(), self.path,
                    FailureReason.RATE_LIMITED,
                )  # fmt: skip

    def queued_behind(self) -> list[Envelope]:
        """The head of the queue (what a durable agent's prefetch may record)."""
        with self.lock:
            return list(itertools.islice(self.queue, PREFETCH))

    def expired(self, env: Envelope) -> None:
        """env reached the head of the queue after its ask deadline: not processed."""
        self._dead_letter(env, "deadline_expired", "ask deadline passed while queued")
        self.stats.failed("expired", None)
        finish(
            env,
            ExecutionResult(
                status=ExecutionStatus.TIMEOUT,
                error=f"{self.path}: ask deadline passed while the message was queued",
                reason=FailureReason.ASK_TIMEOUT,
                handled_by=self.path,
                attempts=env.attempts,
                trace_id=env.trace_id,
            ),
        )

    # -- hosts -----------------------------------------------------------------------------

    def new_generation(self) -> int:
        with self.lock:
            self.generation += 1
            return self.generation

    def activate(self, host: HostCore) -> bool:
        """Attach a started host; False when a newer host, an abandonment or a stop request
        superseded it."""
        with self.lock:
            if host.gen != self.generation or host.abandoned or host.stopping:
                return False
            self.host = host
            self.state = SlotState.RUNNING
            self.wake_pending = bool(self.queue)
            wake = self.wake_pending
        if wake:
            host.wake()
        return True

    def lose_locked(self, host: HostCore) -> None:
        """`host` hung or crashed (the caller holds the lock): it takes no more messages, and
        they wait for its replacement."""
        if self.host is host:
            self.host = None
            self.state = SlotState.RESTARTING

    def release_locked(self, host: HostCore) -> None:
        """`host` ends by itself (its agent stopped itself; the caller holds the lock)."""
        if self.host is host:
            self.host = None

    def detach(self, host: HostCore, state: SlotState | None = None) -> bool:
        """Stop routing to `host` (it finishes its current message); True if it was attached."""
        with self.lock:
            attached = self.host is host
            if attached:
                self.host = None
            if state is not None:
                self.state = state
        return attached

    def live_hosts(self) -> list[HostCore]:
        with self.lock:
            self.hosts = [h for h in self.hosts if not h.finished]
            return list(self.hosts)

    # -- state -----------------------------------------------------------------------------

    def hold_down(self, why: str) -> bool:
        """Its supervisor keeps this agent down because too many of its hung handlers still
        run (abandoned threads cannot be killed); False if it was held already."""
        with self.lock:
            if self.state is SlotState.DOWN and self.held_because is not None:
                return False
            self.held_because = why
        self.set_state(SlotState.DOWN, why, FailureReason.ABANDONED_LIMIT)
        return True

    def too_many_abandoned(self) -> bool:
        return self.stats.abandoned_running >= self.spec.max_abandoned

    def set_state(
        self,
        state: SlotState,
        reason: str | None = None,
        failure: FailureReason = FailureReason.UNAVAILABLE,
    ) -> None:
        """Change state; queued messages that can no longer wait for the primary are passed
        to the fallback chain (degraded) or answered (closed)."""
        with self.lock:
            if failure is not FailureReason.ABANDONED_LIMIT:
                self.held_because = None
            self.state = state
            drain = state in _CLOSED or (state in _DEGRADED and bool(self.fallbacks))
            drained = list(self.queue) if drain else []
            if drain:
                self.queue.clear()
            if state in _CLOSED:  # retries waiting for their backoff will not happen now
                drained.extend(self.retrying)
                self.retrying.clear()
                if self.rate is not None:  # nothing left to wake
                    self.rate.stop_waking()
        if not drained:
            return
        why = reason or self._unavailable(state)
        for env in drained:
            give_up(env, ExecutionStatus.FAILURE, why, self.path, failure)

    def divert_queue(self, status: ExecutionStatus, why: str, reason: FailureReason) -> None:
        with self.lock:
            drained = list(self.queue)
            self.queue.clear()
        for env in drained:
            give_up(env, status, why, self.path, reason)

    def _fallback_ready(self) -> bool:
        return any(f.state not in _CLOSED for f in self.fallbacks)

    def _refusal(self, state: SlotState) -> tuple[str, FailureReason]:
        held = self.held_because
        if state is SlotState.DOWN and held is not None:
            return held, FailureReason.ABANDONED_LIMIT
        return self._unavailable(state), FailureReason.UNAVAILABLE

    def _unavailable(self, state: SlotState) -> str:
        return {
            SlotState.BACKOFF: "primary restarting (backoff)",
            SlotState.DOWN: "its supervisor exhausted its restart budget",
            SlotState.STOPPED: "agent stopped",
            SlotState.FAILED: "the supervision tree failed",
            SlotState.REMOVED: "agent removed",
        }.get(state, f"agent {state.value}")

    def _breaker_changed(self, old: BreakerState, new: BreakerState) -> None:
        emit(
            "breaker_state_changed",
            level="warning" if new is BreakerState.OPEN else "info",
            supervisor=self.parent.path,
            child=self.id,
            path=self.path,
            agent_id=self.id,
            reason=f"{old.value} -> {new.value}",
            old=old.value,
            new=new.value,
        )

    def _dead_letter(self, env: Envelope, reason: str, error: str) -> None:
        env.dead_lettered = True
        self.runtime.dead_letters.post(
            path=self.path,
            reason=reason,
            message=env.message,
            message_id=env.msg_id,
            trace_id=env.trace_id,
            attempts=env.attempts,
            error=error,
            persist=env.seq is not None,
        )
