"""Answering a message: finish() gives the one answer an envelope gets; give_up() passes a
message its stage could not answer down its origin's fallback chain, or answers the caller with
the first failure (and dead-letters a tell nobody could handle: never dropped silently)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import ExecutionResult, ExecutionStatus, FailureReason

from .._events import emit

if TYPE_CHECKING:
    from ._envelope import Envelope

__all__ = ["finish", "give_up"]

_CHAIN_ON = frozenset(
    {
        ExecutionStatus.FAILURE,
        ExecutionStatus.TIMEOUT,
        ExecutionStatus.INVALID_OUTPUT,
        ExecutionStatus.REJECTED,
    }
)


_NOT_THERE = frozenset({FailureReason.UNAVAILABLE, FailureReason.ABANDONED_LIMIT})


def finish(env: Envelope, result: ExecutionResult) -> None:
    """Answer env (first answer wins) and mark it done. A durable message is acknowledged
    in the store now, unless it was refused because its agent was not there to handle it
    (keep_pending): then it stays pending for the agent's next start."""
    env.done = True
    if env.seq is not None and not env.settled and not env.keep_pending:
        durability = env.origin.durability
        if durability is not None:
            durability.settle(env)
    if env.reply is not None:
        env.reply.set(result)
    elif env.unclaimed and not env.dead_lettered and not env.keep_pending:  # its caller died
        env.dead_lettered = True
        env.origin.runtime.dead_letters.post(
            path=env.origin.path,
            reason="unclaimed",
            message=env.message,
            message_id=env.msg_id,
            trace_id=env.trace_id,
            attempts=env.prior_attempts + env.attempts,
            error=f"answered {result.status.value} after a restart; its caller was gone"
            + (f": {result.error}" if result.error else ""),
            persist=True,
        )


def give_up(
    env: Envelope,
    status: ExecutionStatus,
    error: str,
    at: str,
    reason: FailureReason | None = None,
) -> None:
    """Stage `at` could not answer env: pass it to the next fallback of its origin, or answer
    the caller with the first failure's status and reason, and every stage's error."""
    if env.done:
        return  # answered already (someone else won); never answer twice
    origin = env.origin
    if env.trial and origin.breaker is not None:
        with origin.lock:
            origin.breaker.release_trial(env)
    env.errors.append(f"{at}: {error}")
    if env.fallback_reason is None:
        env.fallback_reason = error
        env.first_status = status
        env.first_reason = reason
    if status in _CHAIN_ON:
        nxt = env.stage + 1
        if nxt < len(origin.fallbacks):
            env.stage = nxt
            if nxt == 0:
                emit(
                    "fallback_engaged",
                    path=origin.path,
                    agent_id=origin.id,
                    fallback=origin.fallbacks[0].path,
                    reason=error,
                    trace_id=env.trace_id,
                    message_id=env.msg_id,
                )
            origin.fallbacks[nxt].submit(env)
            return
    if env.seq is not None and reason in _NOT_THERE:  # refused, not handled: kept for later
        env.keep_pending = True
    if env.reply is None and not env.dead_lettered:  # a tell nobody could handle: never dropped
        env.dead_lettered = True  # silently, and counted once
        origin.runtime.dead_letters.post(
            path=origin.path,
            reason=str(env.first_status.value),
            message=env.message,
            message_id=env.msg_id,
            trace_id=env.trace_id,
            attempts=env.attempts,
            error="; ".join(env.errors),
            persist=env.seq is not None and not env.keep_pending,
        )
    finish(
        env,
        ExecutionResult(
            status=env.first_status,
            error="; ".join(env.errors),
            reason=env.first_reason,
            handled_by=at,
            attempts=env.attempts,
            trace_id=env.trace_id,
        ),
    )
