"""Envelope: one message on its way through a slot's mailbox, its fallbacks and retries."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._reply import Reply
    from ._slot import AgentSlot

__all__ = ["Envelope", "new_trace_id"]

_ids = itertools.count(1)
_TRACE_PREFIX = os.urandom(4).hex()
_trace_seq = itertools.count(1)


def new_trace_id() -> str:
    """A process-unique trace id: a random per-process prefix and a counter (cheap to make)."""
    return f"{_TRACE_PREFIX}{next(_trace_seq):08x}"


@dataclass(slots=True, eq=False)
class Envelope:
    """message: the payload; reply: None for a tell; deadline: clock time after which nobody
    waits for the answer (None: never expires); origin: the slot it was sent to (owner of the
    fallback chain); stage: -1 while with the primary, i while with fallback i; attempts:
    deliveries to the primary; chain: paths blocked in asks waiting on this message (cycle
    detection); trial: admitted as a breaker's half-open trial; done: answered or discarded;
    dead_lettered: recorded in the dead-letter office (once). With a durable mailbox: seq is
    the message's number in the store; prior_attempts its deliveries before this process
    (recovered); begun: this delivery is recorded in the store; settled: acknowledged there;
    unclaimed: an ask recovered from the store, whose caller is gone with its process;
    keep_pending: not handled, and its agent not there to (stopped, removed, cut off at
    shutdown): it stays in the store for the agent's next start; state: the agent's snapshot
    after it, saved with its acknowledgement (a failure it returned is acknowledged later)."""

    message: Any
    reply: Reply | None
    deadline: float | None
    origin: AgentSlot
    trace_id: str
    chain: tuple[str, ...] = ()
    msg_id: int = field(default_factory=_ids.__next__)
    stage: int = -1
    attempts: int = 0
    trial: bool = False
    done: bool = False
    dead_lettered: bool = False
    started_at: float | None = None
    fallback_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    first_status: Any = None  # ExecutionStatus of the first stage that could not answer
    first_reason: Any = None  # its FailureReason
    otel_context: Any = None  # the caller's OpenTelemetry context (tracing on)
    seq: int | None = None
    prior_attempts: int = 0
    begun: bool = False
    settled: bool = False
    unclaimed: bool = False
    keep_pending: bool = False
    state: bytes | None = None
