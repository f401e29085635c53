"""Asking: the ask / tell API of a running System, and PendingAsk.

ask() never raises for anything an agent did: every ask ends with an ExecutionResult by its
deadline. It raises only for caller mistakes: an unknown path (UnknownPathError), a system
that is not running (SystemNotRunningError), a bad timeout (ValueError).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import structlog

from actors import ExecutionResult, ExecutionStatus, FailureReason
from actors._current import current_message

from .._clock import Clock
from .._exceptions import SystemNotRunningError
from ..delivery._durable import accept_durably
from ..delivery._envelope import Envelope, new_trace_id
from ..delivery._reply import Reply
from ..delivery._runtime import Runtime
from ..delivery._slot import AgentSlot
from ..store import StoreError
from ..supervision._states import SystemState
from ..supervision._tree import TreeIndex
from ._loop_bridge import answered

__all__ = ["Asking", "PendingAsk"]

_MAX_TIMEOUT = min(threading.TIMEOUT_MAX, 365 * 24 * 3600.0)  # what a lock wait accepts
_ACCEPTING = frozenset({SystemState.STARTING, SystemState.RUNNING, SystemState.FAILED})
_MAX_TRACE = 256


def _ambient_trace() -> str:
    """The trace of the message this thread is handling, else one bound with structlog's
    contextvars (e.g. by a web request), else a new one."""
    ctx = current_message.get()
    if ctx is not None:
        return ctx.trace_id
    bound = structlog.contextvars.get_contextvars().get("trace_id")
    return str(bound) if bound else new_trace_id()


def _check_trace(trace_id: object) -> None:
    """A caller's trace id must be text: it ends up in every answer and event of the request
    (a bad one must fail the caller, not the agent that answers)."""
    if trace_id is None:
        return
    if not isinstance(trace_id, str):
        msg = f"trace_id must be a str, got {type(trace_id).__name__}"
        raise TypeError(msg)
    if len(trace_id) > _MAX_TRACE:
        msg = f"trace_id is {len(trace_id)} characters long; at most {_MAX_TRACE}"
        raise ValueError(msg)


def _timeout_error(env: Envelope, path: str, timeout: float, clock: Clock) -> str:
    if env.started_at is None:
        where = "the message was still queued"
    else:
        where = f"its handler had been running for {clock.now() - env.started_at:.3g}s"
    return f"no answer from {path} within {timeout:g}s ({where})"


class Asking:
    """Sends asks and tells into one running tree and waits for their answers: System's ask /
    tell API delegates here, and agent contexts reach it through the runtime. `state` reads
    the system's lifecycle state; `bind` gives it the runtime and tree once they exist (they
    need its ask / tell to be built)."""

    def __init__(self, name: str, clock: Clock, state: Callable[[], SystemState]) -> None:
        self.name = name
        self.clock = clock
        self._state = state
        self._runtime: Runtime
        self._tree: TreeIndex

    def bind(self, runtime: Runtime, tree: TreeIndex) -> None:
        self._runtime = runtime
        self._tree = tree

    # -- asking ----------------------------------------------------------------------------

    def ask(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        """Send and wait for the answer, at most `timeout` seconds (default: the system's
        default_timeout). Returns an ExecutionResult whatever the agent did."""
        return self._ask(None, None, path, message, timeout, trace_id, idempotency_key)

    def ask_future(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> PendingAsk:
        """Send now; wait later with .result(). Same semantics as ask()."""
        sent = self._submit_ask(None, None, path, message, timeout, trace_id, idempotency_key)
        return PendingAsk(self, sent, path, self._timeout_of(None, timeout))

    async def ask_async(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        """ask() for code running in an event loop: never blocks the loop (a durable
        agent's commit is waited for on a worker thread)."""
        return await self._ask_async(None, None, path, message, timeout, trace_id, idempotency_key)

    async def _ask_async(
        self,
        parent: Envelope | None,
        caller: str | None,
        path: str,
        message: Any,
        timeout: float | None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        args = (parent, caller, path, message, timeout, trace_id, idempotency_key)
        if idempotency_key is not None or self._durable(path):  # a commit to wait for
            sent = await asyncio.to_thread(self._submit_ask, *args)
        else:
            sent = self._submit_ask(*args)
        return await self._await_async(sent, path, self._timeout_of(parent, timeout))

    async def _await_async(
        self, env: Envelope | ExecutionResult, path: str, seconds: float
    ) -> ExecutionResult:
        if isinstance(env, ExecutionResult):
            return env
        assert env.reply is not None
        try:
            return await answered(env.reply.add_done_callback, seconds)
        except TimeoutError:
            return self._expire(env, path, seconds)

    def tell(
        self,
        path: str,
        message: Any,
        *,
        trace_id: str | None = None,
        ttl: float | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send without waiting for an answer (to a durable agent: returns once the message
        is committed). A tell that cannot be handled becomes a dead letter."""
        self._send_tell(None, path, message, trace_id, ttl, idempotency_key)

    async def tell_async(
        self,
        path: str,
        message: Any,
        *,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        if idempotency_key is not None or self._durable(path):
            await asyncio.to_thread(
                self._send_tell, None, path, message, trace_id, None, idempotency_key
            )
        else:
            self.tell(path, message, trace_id=trace_id)

    def _durable(self, path: str) -> bool:
        slot = self._tree.slots.get(path)
        return slot is not None and slot.durability is not None and slot.durability.durable

    def _timeout_of(self, parent: Envelope | None, timeout: float | None) -> float:
        if timeout is None:
            if parent is not None and parent.deadline is not None:
                return max(0.0, parent.deadline - self.clock.now())
            return self._runtime.default_timeout
        if not 0 < timeout <= _MAX_TIMEOUT:
            msg = (
                f"timeout must be a positive number of seconds up to {_MAX_TIMEOUT:.0f}, "
                f"got {timeout!r}"
            )
            raise ValueError(msg)
        return float(timeout)

    def require_running(self) -> None:
        state = self._state()
        if state in (SystemState.STOPPING, SystemState.STOPPED):
            msg = f"system {self.name!r} is {state}"
            raise SystemNotRunningError(msg)

    def _slot(self, path: str) -> AgentSlot:
        self.require_running()
        return self._tree.slot(path)

    def _send(self, env: Envelope, idempotency_key: str | None = None) -> ExecutionResult | None:
        """Submit a new envelope to its slot, carrying the caller's tracing context; to a
        durable agent, once committed to its store. An answer given at once instead: a
        duplicate (its idempotency key was seen), or a store that could not keep it."""
        if self._runtime.tracing is not None:
            env.otel_context = self._runtime.tracing.capture()
        durability = env.origin.durability
        if durability is not None and durability.durable:
            refused = accept_durably(durability, env, idempotency_key)
            if refused is not None:
                return refused
        elif idempotency_key is not None:
            msg = (
                f"idempotency_key is for agents with a durable mailbox; {env.origin.path} "
                "has none (ChildSpec(durable=True))"
            )
            raise ValueError(msg)
        env.origin.submit(env)
        return None

    def _submit_ask(
        self,
        parent: Envelope | None,
        caller: str | None,
        path: str,
        message: Any,
        timeout: float | None,
        trace_id: str | None,
        idempotency_key: str | None = None,
    ) -> Envelope | ExecutionResult:
        """Validate and send an ask: the envelope in flight, or an answer given at once (an ask
        cycle, a duplicate). Raises only for caller mistakes."""
        _check_trace(trace_id)
        slot = self._tree.slots.get(path) if self._state() in _ACCEPTING else None
        if slot is None:
            slot = self._slot(path)  # raises the caller error
        if parent is None:
            if timeout is None:
                seconds = self._runtime.default_timeout
            else:
                seconds = self._timeout_of(None, timeout)
            # system.ask() from inside a handler: the handler (and whoever waits on it) waits
            ctx = current_message.get()
            chain: tuple[str, ...] = ctx.chain if ctx is not None else ()
            trace = trace_id or _ambient_trace()
        else:
            seconds = self._timeout_of(parent, timeout)
            chain = (*parent.chain, caller) if caller is not None else parent.chain
            trace = trace_id or parent.trace_id
        if chain and path in chain:
            cycle = " -> ".join((*chain, path))
            return ExecutionResult(
                status=ExecutionStatus.TIMEOUT,
                reason=FailureReason.ASK_CYCLE,
                error=(
                    f"ask cycle {cycle}: {path} is itself waiting in this chain, so the ask "
                    "could only end at its deadline; answered at once instead"
                ),
                handled_by=None,
                trace_id=trace,
            )
        env = Envelope(message, Reply(), self.clock.now() + seconds, slot, trace, chain)
        refused = self._send(env, idempotency_key)
        return env if refused is None else refused

    def _ask(
        self,
        parent: Envelope | None,
        caller: str | None,
        path: str,
        message: Any,
        timeout: float | None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        sent = self._submit_ask(parent, caller, path, message, timeout, trace_id, idempotency_key)
        if isinstance(sent, ExecutionResult):
            return sent
        return self._await_reply(sent, path, self._timeout_of(parent, timeout))

    def _await_reply(self, env: Envelope, path: str, seconds: float) -> ExecutionResult:
        """Block until env is answered, or answer TIMEOUT at its deadline ourselves."""
        assert env.reply is not None
        if env.reply.wait(self.clock, env.deadline):
            return env.reply.result  # type: ignore[return-value]
        return self._expire(env, path, seconds)

    def _expire(self, env: Envelope, path: str, seconds: float) -> ExecutionResult:
        result = ExecutionResult(
            status=ExecutionStatus.TIMEOUT,
            error=_timeout_error(env, path, seconds, self.clock),
            reason=FailureReason.ASK_TIMEOUT,
            handled_by=path,
            attempts=env.attempts,
            trace_id=env.trace_id,
        )
        assert env.reply is not None
        env.reply.set(result)
        return env.reply.result  # type: ignore[return-value]

    def _tell(
        self, parent: Envelope | None, caller: str, path: str, message: Any, trace_id: str | None
    ) -> None:
        self._send_tell(parent, path, message, trace_id, None)

    def _send_tell(
        self,
        parent: Envelope | None,
        path: str,
        message: Any,
        trace_id: str | None,
        ttl: float | None,
        idempotency_key: str | None = None,
    ) -> None:
        slot = self._slot(path)
        _check_trace(trace_id)
        trace = trace_id or (parent.trace_id if parent is not None else None) or _ambient_trace()
        deadline = self.clock.now() + ttl if ttl is not None else None
        refused = self._send(Envelope(message, None, deadline, slot, trace), idempotency_key)
        if refused is not None and refused.reason is FailureReason.STORE_ERROR:
            raise StoreError(refused.error or "the store could not keep the message")


class PendingAsk:
    """An ask in flight (from System.ask_future)."""

    def __init__(
        self, system: Asking, sent: Envelope | ExecutionResult, path: str, seconds: float
    ) -> None:
        self._system = system
        self._sent = sent
        self._path = path
        self._seconds = seconds

    def done(self) -> bool:
        sent = self._sent
        return isinstance(sent, ExecutionResult) or (sent.reply is not None and sent.reply.done)

    def result(self) -> ExecutionResult:
        """Wait for the answer; by the ask's deadline at the latest."""
        sent = self._sent
        if isinstance(sent, ExecutionResult):
            return sent
        return self._system._await_reply(sent, self._path, self._seconds)
