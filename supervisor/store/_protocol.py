"""The store contract: what the runtime may ask of a durable store, the plain records it gets
back, the errors it may see, and the argument checks every store makes the same way.

Every write is durable when its call returns (committed; fsynced as the store's synchronous
mode says). Agents are keyed by their tree path ("root/chat"); payloads are opaque bytes (the
caller serialises); sequence numbers increase per store, in order of acceptance."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol, runtime_checkable

__all__ = [
    "Appended",
    "PendingMessage",
    "Snapshot",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreOpenError",
    "StoreSchemaError",
    "StoreStats",
    "StoreTimeoutError",
    "StoredDeadLetter",
    "UnknownMessageError",
]


class StoreError(Exception):
    """Base of every error a store raises; a database error is its `__cause__`."""


class StoreClosedError(StoreError, RuntimeError):
    """The store was closed: no read or write is possible any more."""


class StoreTimeoutError(StoreError, TimeoutError):
    """A write was not committed within the time its caller could wait (it may still be)."""


class StoreOpenError(StoreError):
    """The store could not be opened (missing directory, not a store, no WAL)."""


class StoreSchemaError(StoreOpenError):
    """The database was written by a newer version of the store: it is not touched."""


class UnknownMessageError(StoreError, LookupError):
    """No pending message with this sequence number for this agent (never appended, already
    acknowledged, or appended for another agent)."""

    def __init__(self, agent: str, seq: int) -> None:
        self.agent = agent
        self.seq = seq
        super().__init__(f"no pending message {seq} for agent {agent!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.agent, self.seq))


@dataclasses.dataclass(frozen=True, slots=True)
class Appended:
    """seq: the message's sequence number. duplicate: True if a message with the same
    idempotency key was already pending or recently handled; seq is then that message's and
    nothing was stored."""

    seq: int
    duplicate: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class PendingMessage:
    """A message appended and not yet acknowledged. attempts: how many deliveries were begun
    (0: never delivered; > 0 after a restart: it is a redelivery). accepted_at: wall clock
    (time.time()) of its append."""

    seq: int
    payload: bytes
    attempts: int
    idempotency_key: str | None
    accepted_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """An agent's last saved state. version: 1 on the first save, +1 on every save after;
    saved_at: wall clock of that save."""

    data: bytes
    saved_at: float
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """id increases per store, in order of recording; recorded_at is wall clock."""

    id: int
    agent: str
    payload: bytes
    reason: str
    recorded_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters since the store was opened. batches: transactions run; commits: those that
    committed; operations: writes committed; failed_operations: writes that raised (their own
    error or their batch's); max_batch: most writes in one transaction. Commit latency (one
    transaction, BEGIN to COMMIT returned, the fsync included) over the last
    `latency_window` transactions, in ms; 0.0 before the first."""

    path: str
    synchronous: str
    commits: int
    operations: int
    failed_operations: int
    batches: int
    max_batch: int
    commit_p50_ms: float
    commit_p99_ms: float
    latency_window: int


@runtime_checkable
class Store(Protocol):
    """A durable store: mailboxes, snapshots and dead letters of agents. Thread-safe; every
    write is committed before it returns, except with wait=False: then it is queued,
    committed in order with the writes around it, and a failure is logged (not raised).
    Wrong argument types raise TypeError, empty agent or key ValueError; after close() every
    call but stats() and close() raises StoreClosedError."""

    def append(
        self,
        agent: str,
        payload: bytes,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Appended:
        """Store a message for agent. With a key already pending or recently handled for
        agent, store nothing and return that message's seq with duplicate=True.
        StoreTimeoutError if it is not committed within `timeout` seconds."""

    def flush(self) -> None:
        """Return once every write queued before this call is committed (or failed)."""

    def pending(
        self, agent: str, *, after: int = 0, limit: int | None = None
    ) -> list[PendingMessage]:
        """Agent's unacknowledged messages with seq > after, in seq order (at most limit)."""

    def pending_count(self, agent: str) -> int:
        """How many messages of agent are pending (no payload is read)."""

    def pending_counts(self) -> dict[str, int]:
        """Every agent with pending messages -> how many (no payload is read)."""

    def begin_attempt(self, agent: str, seq: int) -> int:
        """Record one more delivery of a pending message; return its attempt count (1 the
        first time). UnknownMessageError if it is not pending for agent."""

    def begin_attempts(self, agent: str, seqs: Sequence[int]) -> dict[int, int]:
        """begin_attempt for several messages in one write: {seq: attempts}; a seq that is
        not pending is left out."""

    def ack(
        self, agent: str, seq: int, *, snapshot: bytes | None = None, wait: bool = True
    ) -> None:
        """Delete a handled message and save agent's snapshot, if given, in the same
        transaction. UnknownMessageError (and nothing saved) if it is not pending."""

    def save_snapshot(self, agent: str, data: bytes, *, wait: bool = True) -> None:
        """Replace agent's snapshot (its version goes up by one)."""

    def load_snapshot(self, agent: str) -> Snapshot | None:
        """Agent's last snapshot; None if it never saved one."""

    def add_dead_letter(
        self, agent: str, payload: bytes, reason: str, *, wait: bool = True
    ) -> int | None:
        """Record a message nobody handled; return its id (None with wait=False)."""

    def dead_letters(self, agent: str | None = None, limit: int = 100) -> list[StoredDeadLetter]:
        """The latest `limit` dead letters (of agent, or of every agent), oldest first."""

    def dead_letter_count(self) -> int:
        """How many dead letters are recorded."""

    def stats(self) -> StoreStats:
        """Counters and commit latency since the store was opened (also after close())."""

    def close(self) -> None:
        """Commit what is queued, then release everything. Idempotent."""

    def __enter__(self) -> Store: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def check_agent(agent: object) -> str:
    if not isinstance(agent, str):
        raise TypeError(f"agent must be a str (a tree path), got {type(agent).__name__}")
    if not agent:
        raise ValueError("agent must not be empty")
    return agent


def check_payload(payload: object, name: str = "payload") -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    raise TypeError(f"{name} must be bytes (serialise it first), got {type(payload).__name__}")


def check_key(key: object) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str):
        raise TypeError(f"idempotency_key must be a str or None, got {type(key).__name__}")
    if not key.strip():
        raise ValueError("idempotency_key must not be empty or blank (pass None for no key)")
    return key


def check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value
