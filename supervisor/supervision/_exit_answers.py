"""The message that crashed or hung a child: retried, quarantined as poison, passed to the
fallback chain, or answered with FAILURE / TIMEOUT. Runs on the supervisor's thread after the
strategy has been applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors import ExecutionStatus, FailureReason
from strategies import ExitKind

from .._events import emit
from ..delivery._slot import AgentSlot, SlotState, give_up

if TYPE_CHECKING:
    from ..delivery._envelope import Envelope
    from ..delivery._runtime import Runtime

__all__ = ["answer_exit"]


def answer_exit(
    runtime: Runtime,
    child: Any,
    kind: ExitKind,
    env: Envelope | None,
    error: str | None,
    reason: FailureReason | None = None,
) -> None:
    if env is None or env.done:
        return
    error = error or kind.value
    if not isinstance(child, AgentSlot):
        path = getattr(child, "path", "?")
        give_up(env, ExecutionStatus.FAILURE, error, path, FailureReason.CRASH)
        return
    spec = child.spec
    if kind is ExitKind.CRASH and env.stage < 0 and spec.retries > 0:
        closed = child.state in (SlotState.REMOVED, SlotState.FAILED)
        if env.prior_attempts + env.attempts <= spec.retries and not closed:
            _retry(runtime, child, env, error)
            return
        runtime.dead_letters.post(
            path=child.path, reason="poison", message=env.message, message_id=env.msg_id,
            trace_id=env.trace_id, attempts=env.attempts, error=error,
            persist=env.seq is not None,
        )  # fmt: skip
        emit("message_quarantined", level="warning", path=child.path, agent_id=child.id,
             reason=error, attempts=env.attempts, trace_id=env.trace_id,
             message_id=env.msg_id)  # fmt: skip
    if kind is ExitKind.HANG:
        give_up(env, ExecutionStatus.TIMEOUT, error, child.path, reason or FailureReason.DEADLINE)
    else:
        give_up(env, ExecutionStatus.FAILURE, error, child.path, reason or FailureReason.CRASH)


def _retry(runtime: Runtime, child: AgentSlot, env: Envelope, error: str) -> None:
    """Re-deliver to the restarted actor, at the head of its mailbox, after the backoff."""
    backoff = child.spec.backoff
    delay = backoff.delay(env.attempts - 1, runtime.rng.random()) if backoff is not None else 0.0
    emit("message_retrying", path=child.path, agent_id=child.id, reason=error,
         attempt=env.attempts, delay=delay, trace_id=env.trace_id,
         message_id=env.msg_id)  # fmt: skip
    if delay > 0:
        child.hold_for_retry(env)
        runtime.scheduler.call_later(delay, lambda: child.redeliver(env))
    else:
        child.redeliver(env)
