"""One agent's durability in the system's store: its mailbox (ChildSpec(durable=True)) and
its state (ChildSpec(persist=True)).

Mailbox, in the order a message lives:
- accept: a send is appended and committed before it returns (group commit: concurrent
  sends share a transaction); a send whose idempotency key the store has seen is a duplicate
  and is not queued again.
- begin: before its handler runs, its delivery is recorded, together with up to PREFETCH
  messages queued behind it (one commit for them all; as with a broker's prefetch, a message
  recorded but not yet handled when the process dies counts one delivery too many).
- settle: once handled (by the agent or a fallback) or dead-lettered for a reason of its
  own, it is acknowledged (deleted), in the same transaction as the agent's new snapshot.
  Acknowledgements are queued, not waited for: they commit in order, so the snapshot in the
  store is always the one saved with the last acknowledged message. A message that found its
  agent stopped (system shutdown, child removed) stays pending for the agent's next start.
- recover: on start, what is still pending is queued again first, in order, flagged
  redelivered when it had been delivered before.

State: snapshot() after each message, saved when its JSON differs from the last saved (or
the handler called self.context.mark_dirty()); restored before on_start.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from actors import ExecutionResult, ExecutionStatus, FailureReason

from .._events import emit
from ..store import Store, StoreError, StoreTimeoutError
from ..store._protocol import check_key
from ._envelope import Envelope

if TYPE_CHECKING:
    from ..store import Snapshot
    from ._slot import AgentSlot

__all__ = [
    "PREFETCH",
    "AgentDurability",
    "accept_durably",
    "decode_state",
    "encode_state",
    "requeue_pending",
]

PREFETCH = 64  # deliveries recorded in one commit, at most
POISON_SLACK = 2  # runs beyond its retries a message may be delivered in before quarantine


class AgentDurability:
    """Written by: senders' threads (accept: counters under the lock), the agent's host
    thread (begin, state), whoever answers a message (settle)."""

    def __init__(self, store: Store, path: str, *, durable: bool, persist: bool) -> None:
        self.store = store
        self.path = path
        self.durable = durable
        self.persist = persist
        self._lock = threading.Lock()
        self.duplicates = 0  # sends recognised by their idempotency key, not queued again
        self.redelivered = 0  # messages recovered from the store that had been delivered
        self.recovered = 0  # messages recovered from the store at start
        self.saved: bytes | None = None  # the snapshot last saved or restored (host thread)
        self.dirty = False  # self.context.mark_dirty() since the last save (host thread)
        self.last_snapshot_at: float | None = None
        self.state_error: str | None = None  # the last snapshot that could not load or save
        self.last_active: float | None = None  # clock time its last message ended (host)

    # -- mailbox ---------------------------------------------------------------------------

    def accept(self, env: Envelope, idempotency_key: str | None, timeout: float | None) -> bool:
        """Commit env to the store before it is queued (within `timeout`: an ask's time
        left); False for a duplicate. Raises TypeError for a message that cannot be pickled
        (so it cannot be kept), StoreError (StoreTimeoutError) if it was not committed."""
        try:
            payload = pickle.dumps(
                (env.message, env.reply is not None, env.trace_id), pickle.HIGHEST_PROTOCOL
            )
        except Exception as exc:
            msg = f"a durable mailbox keeps messages pickled, and this one cannot be: {exc}"
            raise TypeError(msg) from exc
        appended = self.store.append(
            self.path, payload, idempotency_key=idempotency_key, timeout=timeout
        )
        if appended.duplicate:
            with self._lock:
                self.duplicates += 1
            return False
        env.seq = appended.seq
        return True

    def recover(self, origin: AgentSlot, now: float) -> list[Envelope]:
        """Envelopes for every message still pending in the store, in order (no deadline:
        whoever waited for them is gone). A message that cannot be unpickled any more is
        dead-lettered by the caller (its envelope carries the error as its message)."""
        envs = []
        self.store.flush()  # an earlier slot of this path may have acks still queued
        for pending in self.store.pending(self.path):
            try:
                message, was_ask, trace_id = pickle.loads(pending.payload)
            except Exception as exc:  # noqa: BLE001 - e.g. its class no longer exists
                message, was_ask, trace_id = _Unreadable(str(exc)), False, f"seq-{pending.seq}"
            env = Envelope(message, None, None, origin, trace_id)
            env.seq = pending.seq
            env.prior_attempts = pending.attempts
            env.unclaimed = was_ask
            envs.append(env)
        with self._lock:
            self.recovered += len(envs)
            self.redelivered += sum(1 for e in envs if e.prior_attempts)
        return envs

    def begin(self, env: Envelope, queued: list[Envelope]) -> None:
        """Record env's delivery (and that of durable messages queued behind it) before its
        handler runs: after a crash it is then known to have been delivered."""
        if env.seq is None or env.begun:
            return
        batch = [env, *(e for e in queued if e.seq is not None and not e.begun)][:PREFETCH]
        for e in batch:
            e.begun = True
        try:
            self.store.begin_attempts(self.path, [e.seq for e in batch if e.seq is not None])
        except StoreError as exc:  # handled anyway; after a crash it may not show redelivered
            self._store_failed("begin", exc)

    def settle(self, env: Envelope, state: bytes | None = None) -> None:
        """env's end: acknowledge it, with the agent's new snapshot (given, or kept on env
        since the agent returned a failure that went down the fallback chain)."""
        if state is None:
            state, env.state = env.state, None
        if env.settled or env.seq is None:
            if state is not None:
                self.save(state)
            return
        env.settled = True
        try:
            self.store.ack(self.path, env.seq, snapshot=state, wait=False)
        except StoreError as exc:  # the caller is answered still; it is handled again later
            self._store_failed("acknowledge", exc)
            return
        if state is not None:
            self._saved(state)

    def pending(self) -> int:
        return self.store.pending_count(self.path)

    # -- state -----------------------------------------------------------------------------

    def load(self) -> Snapshot | None:
        """The stored snapshot, once what is queued for the store is written (an earlier
        slot of this path may have its last snapshot still queued)."""
        self.store.flush()
        return self.store.load_snapshot(self.path)

    def changed(self, state: bytes) -> bool:
        return self.dirty or state != self.saved

    def restored(self, state: bytes) -> None:
        self.saved = state
        self.state_error = None

    def save(self, state: bytes) -> None:
        try:
            self.store.save_snapshot(self.path, state, wait=False)
        except StoreError as exc:
            self._store_failed("save the snapshot", exc)
            return
        self._saved(state)

    def _store_failed(self, what: str, exc: StoreError) -> None:
        self.dirty = True  # the next message saves the state again
        self.state_error = f"could not {what}: {exc}"
        emit("store_write_failed", level="error", path=self.path, reason=self.state_error)

    def _saved(self, state: bytes) -> None:
        self.saved = state
        self.dirty = False
        self.last_snapshot_at = time.time()


def accept_durably(
    durability: AgentDurability, env: Envelope, idempotency_key: str | None
) -> ExecutionResult | None:
    """Commit a send to a durable agent: None once accepted (queue it), else the answer it
    gets at once: REJECTED (duplicate) for a key seen before, FAILURE (store_error) when the
    store could not keep it, INVALID_INPUT for an ask whose message cannot be pickled (a
    tell of one raises TypeError, as the caller's mistake)."""
    check_key(idempotency_key)  # a caller's mistake raises here, not as a refused message
    path = durability.path
    timeout = None
    if env.reply is not None and env.deadline is not None:  # an ask: within its deadline
        timeout = max(0.001, env.deadline - env.origin.runtime.clock.now())
    try:
        accepted = durability.accept(env, idempotency_key, timeout)
    except TypeError as exc:
        if env.reply is None:
            raise
        return _refused(env, ExecutionStatus.INVALID_INPUT, FailureReason.INVALID_INPUT, str(exc))
    except StoreTimeoutError:
        error = (
            f"{path}: the store did not commit the message within the ask's deadline (if it "
            "still does, the message is handled after the next start)"
        )
        return _refused(env, ExecutionStatus.TIMEOUT, FailureReason.ASK_TIMEOUT, error)
    except StoreError as exc:
        error = f"{path}: the store could not keep the message: {exc}"
        return _refused(env, ExecutionStatus.FAILURE, FailureReason.STORE_ERROR, error)
    if accepted:
        return None
    emit("duplicate_ignored", path=path, trace_id=env.trace_id, reason="idempotency key seen")
    error = (
        f"{path} already has the message with idempotency key {idempotency_key!r} (pending "
        "or handled; its answer went to whoever sent it first)"
    )
    return _refused(env, ExecutionStatus.REJECTED, FailureReason.DUPLICATE, error)


def _refused(
    env: Envelope, status: ExecutionStatus, reason: FailureReason, error: str
) -> ExecutionResult:
    return ExecutionResult(
        status=status,
        reason=reason,
        error=error,
        handled_by=env.origin.path,
        trace_id=env.trace_id,
    )


def requeue_pending(slot: AgentSlot) -> None:
    """On a durable agent's start (its slot is new: system start, start_child), queue what
    the store still holds for it, ahead of anything sent from now on."""
    durability = slot.durability
    if durability is None or not durability.durable:
        return
    envs = durability.recover(slot, slot.runtime.clock.now())
    # delivered in this many runs of the process and never acknowledged: it takes the
    # process down with it (os._exit, a segfault, the OOM killer). Prefetch gives messages
    # behind it a delivery too, hence the slack.
    limit = slot.spec.retries + POISON_SLACK
    bad = [e for e in envs if isinstance(e.message, _Unreadable) or e.prior_attempts > limit]
    with slot.lock:
        slot.queue.extend(e for e in envs if e not in bad)
    for env in bad:
        unreadable = isinstance(env.message, _Unreadable)
        env.dead_lettered = True
        slot.runtime.dead_letters.post(
            path=slot.path,
            reason="unreadable" if unreadable else "poison",
            message=None if unreadable else env.message,
            message_id=env.msg_id,
            trace_id=env.trace_id,
            attempts=env.prior_attempts,
            error=env.message.error
            if unreadable
            else f"delivered in {env.prior_attempts} runs of the process, never handled",
            persist=True,
        )
        durability.settle(env)


class _Unreadable:
    """A stored message that no longer unpickles (dead-lettered on recovery)."""

    def __init__(self, error: str) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"<unreadable stored message: {self.error}>"


def encode_state(state: Any) -> bytes:
    """A snapshot as canonical JSON (so an unchanged state compares equal)."""
    if isinstance(state, BaseModel):
        state = state.model_dump(mode="json")
    if not isinstance(state, dict):
        msg = f"snapshot() must return a dict or a pydantic model, got {type(state).__name__}"
        raise TypeError(msg)
    try:
        text = json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        msg = f"snapshot() must return JSON-able data: {exc}"
        raise TypeError(msg) from exc
    return text.encode("utf-8")


def decode_state(data: bytes) -> dict[str, Any]:
    state = json.loads(data.decode("utf-8"))
    if not isinstance(state, dict):
        msg = f"a stored snapshot must be a JSON object, got {type(state).__name__}"
        raise TypeError(msg)
    return state
