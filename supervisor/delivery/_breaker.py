"""SlotBreaker: one aiobreaker CircuitBreaker per child slot, made safe for threads.

aiobreaker 1.2 has no locks (concurrent callers all pass a half-open breaker), decides with
datetime.utcnow() and reports with datetime.now(). So here:
- every call into it happens under the owning slot's lock (the caller holds it);
- the open -> half-open decision is ours, on the runtime's monotonic clock;
- exactly one trial message is admitted while half-open; it is freed again when that message
  is answered some other way or its deadline passes;
- aiobreaker keeps the failure counter and the state machine, and notifies our listener of
  every transition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aiobreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerListener
from aiobreaker.state import CircuitBreakerState

from strategies import BreakerPolicy

if TYPE_CHECKING:
    from .._clock import Clock
    from ._envelope import Envelope

__all__ = ["BreakerState", "DeadlineExceeded", "InvalidOutput", "SlotBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_FROM_AIOBREAKER = {
    CircuitBreakerState.CLOSED: BreakerState.CLOSED,
    CircuitBreakerState.OPEN: BreakerState.OPEN,
    CircuitBreakerState.HALF_OPEN: BreakerState.HALF_OPEN,
}


class DeadlineExceeded(Exception):
    """A handler overran its message deadline (a breaker failure)."""


class InvalidOutput(Exception):
    """A handler produced output that failed validation (a breaker failure)."""


def _succeed() -> None:
    return None


def _fail(exc: BaseException) -> None:
    raise exc


class _Listener(CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self, owner: SlotBreaker) -> None:
        self._owner = owner

    def state_change(self, cb: Any, old: Any, new: Any) -> None:
        before = _FROM_AIOBREAKER[old.state] if old is not None else BreakerState.CLOSED
        self._owner._changed(before, _FROM_AIOBREAKER[new.state])


class SlotBreaker:
    """State changes are reported to on_change(old, new) while the slot lock is held."""

    def __init__(
        self,
        policy: BreakerPolicy,
        clock: Clock,
        name: str,
        on_change: Callable[[BreakerState, BreakerState], None],
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._cb = CircuitBreaker(
            fail_max=policy.fail_max,
            timeout_duration=timedelta(seconds=policy.reset_timeout),
            exclude=list(policy.exclude),
            name=name,
        )
        self._cb.add_listener(_Listener(self))
        self.opened_at: float | None = None
        self.trial: Envelope | None = None
        # closed with no failure counted: a success then changes nothing, so the hot path
        # may skip the lock (only written under the slot lock)
        self.clean = True
        self.failures_total = 0
        self.opens_total = 0

    @property
    def state(self) -> BreakerState:
        return _FROM_AIOBREAKER[self._cb.current_state]

    @property
    def failures(self) -> int:
        """Consecutive failures counted by aiobreaker since the last success."""
        return int(self._cb.fail_counter)

    def reopens_in(self, now: float) -> float | None:
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return None
        return max(0.0, self.opened_at + self.policy.reset_timeout - now)

    def _refresh(self) -> None:
        self.clean = (
            self._cb.current_state is CircuitBreakerState.CLOSED and not self._cb.fail_counter
        )

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        if new is BreakerState.OPEN:
            self.opened_at = self._clock.now()
            self.opens_total += 1
        elif new is BreakerState.CLOSED:
            self.opened_at = None
        if new is not BreakerState.HALF_OPEN:
            self.trial = None
        self._on_change(old, new)

    def admit(self, env: Envelope) -> str | None:
        """None when env may go to the primary, else why not. Caller holds the slot lock."""
        state = self.state
        if state is BreakerState.CLOSED:
            return None
        now = self._clock.now()
        if state is BreakerState.OPEN:
            wait = self.reopens_in(now) or 0.0
            if wait > 0:
                return (
                    f"circuit open after {self.policy.fail_max} consecutive failures; "
                    f"next trial in {wait:.1f}s"
                )
            self._cb.half_open()
            self.clean = False
        trial = self.trial
        expired_in_queue = (
            trial is not None
            and trial.started_at is None
            and trial.deadline is not None
            and now >= trial.deadline
        )
        if trial is not None and not (trial.done or expired_in_queue):
            return "circuit half-open: its one trial message is still in flight"
        self.trial = env
        env.trial = True
        return None

    def record_success(self, env: Envelope) -> None:
        state = self.state
        if state is BreakerState.CLOSED:
            if self._cb.fail_counter:
                self._cb.call(_succeed)
        elif state is BreakerState.HALF_OPEN and self.trial is env:
            self._cb.call(_succeed)  # closes
        self._refresh()

    def record_failure(self, env: Envelope, exc: BaseException) -> bool:
        """Count one failure; True when this failure opened the breaker."""
        state = self.state
        if state is BreakerState.OPEN:
            return False  # a late answer from before it opened
        if state is BreakerState.HALF_OPEN and self.trial is not env:
            return False
        if not isinstance(exc, Exception):
            exc = RuntimeError(repr(exc))
        counted = self._cb.is_system_error(exc)
        try:
            self._cb.call(_fail, exc)
        except CircuitBreakerError:
            pass
        except Exception:  # noqa: BLE001 - aiobreaker re-raises the failure itself
            pass
        if counted:
            self.failures_total += 1
        self._refresh()
        return self.state is BreakerState.OPEN

    def release_trial(self, env: Envelope) -> None:
        if self.trial is env:
            self.trial = None
