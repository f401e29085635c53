"""What every host does with what a handler produced, whatever runs the handler: shape the
answer (SUCCESS, or the agent's own failure status), count breaker successes and failures,
and answer the caller or pass the message down its fallback chain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors import ExecutionResult, ExecutionStatus, FailureReason
from actors._redaction import redact_text

from ..delivery._answering import finish, give_up
from ..delivery._breaker import DeadlineExceeded, InvalidOutput

if TYPE_CHECKING:
    from ..delivery._envelope import Envelope
    from ..delivery._slot import AgentSlot

__all__ = ["RemoteCrash", "answer", "breaker_failure", "describe"]

_FAILING = frozenset(
    {ExecutionStatus.FAILURE, ExecutionStatus.TIMEOUT, ExecutionStatus.INVALID_OUTPUT}
)


class RemoteCrash(Exception):
    """A crash of an agent that runs elsewhere (a worker process): `described` is its error
    as describe() wrote it there; `reason` is finer than a crash when known (memory)."""

    def __init__(self, described: str, reason: FailureReason | None = None) -> None:
        super().__init__(described)
        self.described = described
        self.reason = reason


def describe(exc: BaseException) -> str:
    """A readable one-line error for callers and health, with secrets masked. Never raises
    (an exception's __str__ is user code too)."""
    if isinstance(exc, RemoteCrash):
        return exc.described
    name = type(exc).__name__
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an unprintable exception is still a crash
        return f"{name}: <unprintable exception>"
    return redact_text(f"{name}: {text}") if text else name


def answer(slot: AgentSlot, env: Envelope, outcome: Any) -> None:
    """`slot`'s handler returned `outcome` for env: answer it (or, for a failure status the
    agent returned, count it and pass it on)."""
    fallback = env.stage >= 0
    if isinstance(outcome, ExecutionResult):
        status = outcome.status
        if status in _FAILING:
            _failed_result(slot, env, outcome)
            return
        result = outcome.model_copy(
            update={
                "handled_by": slot.path,
                "attempts": env.attempts,
                "fallback_used": fallback,
                "trace_id": env.trace_id,
                "reason": outcome.reason or (env.first_reason if fallback else None),
            }
        )
    else:
        result = ExecutionResult(
            status=ExecutionStatus.SUCCESS,
            data=outcome,
            handled_by=slot.path,
            attempts=env.attempts,
            fallback_used=fallback,
            trace_id=env.trace_id,
            reason=env.first_reason if fallback else None,
        )
    breaker = slot.breaker
    if breaker is not None and not breaker.clean and result.status is ExecutionStatus.SUCCESS:
        with slot.lock:
            breaker.record_success(env)
    if fallback:
        env.origin.stats.fallback_answers += 1
    finish(env, result)


def _failed_result(slot: AgentSlot, env: Envelope, outcome: ExecutionResult) -> None:
    """The agent answered with a failure status: a breaker failure (per policy), then the
    fallback chain or the caller."""
    status = outcome.status
    error = redact_text(outcome.error or status.value)
    slot.stats.failed(status.value, error)
    breaker = slot.breaker
    counts = breaker is not None and (
        status is ExecutionStatus.FAILURE
        or (status is ExecutionStatus.INVALID_OUTPUT and breaker.policy.count_invalid_output)
        or (status is ExecutionStatus.TIMEOUT and breaker.policy.count_timeouts)
    )
    if counts:
        with slot.lock:
            tripped = breaker_failure(slot, env, InvalidOutput(error))
        if tripped:
            slot.divert_queue(
                ExecutionStatus.REJECTED, "circuit opened", FailureReason.BREAKER_OPEN
            )
    reason = outcome.reason
    if reason is None and status is ExecutionStatus.INVALID_OUTPUT:
        reason = FailureReason.INVALID_OUTPUT
    give_up(env, status, error, slot.path, reason)


def breaker_failure(slot: AgentSlot, env: Envelope, exc: BaseException) -> bool:
    """Count a breaker failure (the caller holds the slot lock); True if it opened."""
    breaker = slot.breaker
    if breaker is None:
        return False
    if isinstance(exc, DeadlineExceeded) and not breaker.policy.count_timeouts:
        return False
    return breaker.record_failure(env, exc)
