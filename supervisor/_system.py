"""System: a running supervision tree, and start(), which makes one.

ask() never raises for anything an agent did: every ask ends with an ExecutionResult by its
deadline. It raises only for caller mistakes: an unknown path (UnknownPathError), a system
that is not running (SystemNotRunningError), a bad timeout (ValueError).
"""

from __future__ import annotations

import asyncio
import random
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from actors import ExecutionResult, ExecutionStatus, FailureReason
from actors._current import current_message
from strategies import ExitKind

from ._clock import Clock, MonotonicClock
from ._dead_letters import DeadLetter, DeadLetterOffice
from ._envelope import Envelope, new_trace_id
from ._events import emit
from ._exceptions import SystemNotRunningError, TreeStartError
from ._health import TreeHealth, snapshot
from ._node import Exited, Shutdown, StartChild, Started, StopChild, Stopped, SupervisorNode
from ._otel import Tracing
from ._reply import Reply
from ._runtime import Runtime
from ._scheduler import Scheduler
from ._slot import AgentSlot, SlotState
from ._spec import ChildSpec, Supervisor
from ._supervisor_actor import SupervisorActor
from ._tree import TreeIndex

if TYPE_CHECKING:
    from ._http import HealthServer

__all__ = ["System", "start"]


_ACCEPTING = frozenset({"starting", "running", "failed"})


def _ambient_trace() -> str:
    """The trace of the message this thread is handling, else one bound with structlog's
    contextvars (e.g. by a web request), else a new one."""
    ctx = current_message.get()
    if ctx is not None:
        return ctx.trace_id
    bound = structlog.contextvars.get_contextvars().get("trace_id")
    return str(bound) if bound else new_trace_id()


def _timeout_error(env: Envelope, path: str, timeout: float, clock: Clock) -> str:
    if env.started_at is None:
        where = "the message was still queued"
    else:
        where = f"its handler had been running for {clock.now() - env.started_at:.3g}s"
    return f"no answer from {path} within {timeout:g}s ({where})"


class System:
    """A running tree. Use as a context manager, or call shutdown()."""

    def __init__(
        self,
        spec: Supervisor,
        *,
        clock: Clock | None = None,
        default_timeout: float = 30.0,
        seed: int | None = None,
        tracing: bool | Any = False,
    ) -> None:
        if not isinstance(spec, Supervisor):
            msg = f"start() takes a Supervisor tree, got {type(spec).__name__}"
            raise TypeError(msg)
        self.spec = spec
        self.clock: Clock = clock or MonotonicClock()
        self.state = "starting"
        self.failure: str | None = None
        self._runtime = Runtime(
            clock=self.clock,
            scheduler=Scheduler(self.clock),
            dead_letters=DeadLetterOffice(),
            default_timeout=default_timeout,
            ask=self._ask,
            tell=self._tell,
            rng=random.Random(seed),
            tracing=_make_tracing(tracing),
        )
        self._tree = TreeIndex(spec, self._runtime)
        self._root_done: Future[str] = Future()
        self._root_stopped = threading.Event()
        self._guardian_started = threading.Event()
        self._guardian_stopped = threading.Event()
        self._servers: list[HealthServer] = []
        self._tree.root.on_report = self._on_root_report
        self._tree.guardian.on_report = self._on_guardian_report

    # -- lifecycle -------------------------------------------------------------------------

    def _boot(self, timeout: float) -> None:
        SupervisorActor.launch(self._tree.guardian, 1, self._tree)
        if not self._guardian_started.wait(timeout):
            self._abort("fallback actors did not start within the start timeout")
        SupervisorActor.launch(self._tree.root, 1, self._tree)
        try:
            outcome = self._root_done.result(timeout)
        except TimeoutError:
            self._abort(f"the tree did not start within {timeout}s")
        if outcome != "started":
            self._abort(outcome)
        self.state = "running"
        emit(
            "tree_started",
            supervisor=self._tree.root.path,
            path=self._tree.root.path,
            child=None,
            agent_id=None,
            reason=None,
            agents=len(self._tree.slots),
        )

    def _abort(self, reason: str) -> None:
        self.shutdown(timeout=10.0)
        raise TreeStartError(f"could not start {self.spec.id}: {reason}")

    def _on_root_report(self, message: Any) -> None:
        if isinstance(message, Started):
            self._tree.root.state = "running"
            if not self._root_done.done():
                self._root_done.set_result("started")
        elif isinstance(message, Exited) and message.kind is ExitKind.ESCALATED:
            self._fail_tree(message.error or "root supervisor gave up")
        elif isinstance(message, Stopped):
            self._root_stopped.set()

    def _on_guardian_report(self, message: Any) -> None:
        if isinstance(message, Started):
            self._guardian_started.set()
        elif isinstance(message, (Stopped, Exited)):
            self._guardian_stopped.set()
            self._guardian_started.set()

    def _fail_tree(self, reason: str) -> None:
        self.failure = reason
        if self.state != "stopping":
            self.state = "failed"
        self._tree.root.state = "failed"
        emit(
            "tree_failed",
            level="critical",
            supervisor=self._tree.root.path,
            path=self._tree.root.path,
            child=None,
            agent_id=None,
            reason=reason,
        )
        for slot in self._tree.agents_under(self._tree.root):
            slot.set_state(SlotState.FAILED, f"the supervision tree failed: {reason}")
        self._root_stopped.set()
        if not self._root_done.done():
            self._root_done.set_result(reason)

    def shutdown(self, timeout: float | None = 30.0) -> None:
        """Stop in order: the tree (children in reverse order, each given its
        shutdown_timeout to finish its current message), then the fallbacks, then the timers.
        Messages still queued are answered with FAILURE. Idempotent."""
        if self.state in ("stopping", "stopped"):
            return
        failed = self.state == "failed"
        self.state = "stopping"
        root = self._tree.root
        if not failed and root.actor is not None:
            root.post(Shutdown("shutdown"))
            self._root_stopped.wait(timeout)
        for slot in self._tree.agents_under(root):
            slot.set_state(SlotState.STOPPED, "system shut down")
        guardian = self._tree.guardian
        if guardian.actor is not None:
            guardian.post(Shutdown("shutdown"))
            self._guardian_stopped.wait(timeout)
        for slot in list(self._tree.slots.values()):
            slot.set_state(SlotState.STOPPED, "system shut down")
        self._runtime.scheduler.stop()
        for server in self._servers:
            server.close()
        self._join_threads(timeout if timeout is not None else 30.0)
        self.state = "stopped"
        emit(
            "tree_stopped",
            supervisor=root.path,
            path=root.path,
            child=None,
            agent_id=None,
            reason="shutdown",
        )

    def _join_threads(self, timeout: float) -> None:
        deadline = self.clock.now() + timeout if self.clock.real else None
        for slot in list(self._tree.slots.values()):
            for host in slot.live_hosts():
                if host.abandoned or host.thread is None:
                    continue
                remaining = None if deadline is None else max(0.0, deadline - self.clock.now())
                host.thread.join(remaining if remaining is not None else 5.0)

    def __enter__(self) -> System:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- asking ----------------------------------------------------------------------------

    def ask(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> ExecutionResult:
        """Send and wait for the answer, at most `timeout` seconds (default: the system's
        default_timeout). Returns an ExecutionResult whatever the agent did."""
        return self._ask(None, None, path, message, timeout, trace_id)

    def ask_future(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> PendingAsk:
        """Send now; wait later with .result(). Same semantics as ask()."""
        env, early = self._prepare(None, None, path, message, timeout, trace_id)
        return PendingAsk(self, env, early, path, self._timeout_of(None, timeout))

    async def ask_async(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
    ) -> ExecutionResult:
        """ask() for code running in an event loop: never blocks the loop."""
        env, early = self._prepare(None, None, path, message, timeout, trace_id)
        if early is not None:
            return early
        assert env is not None
        assert env.reply is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ExecutionResult] = loop.create_future()

        def settle(result: ExecutionResult) -> None:
            if not waiter.done():
                waiter.set_result(result)

        def deliver(result: ExecutionResult) -> None:
            loop.call_soon_threadsafe(settle, result)

        env.reply.add_done_callback(deliver)
        seconds = self._timeout_of(None, timeout)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), seconds)
        except TimeoutError:
            return self._expire(env, path, seconds)

    def tell(
        self, path: str, message: Any, *, trace_id: str | None = None, ttl: float | None = None
    ) -> None:
        """Send without waiting. A tell that cannot be handled becomes a dead letter."""
        self._send_tell(None, None, path, message, trace_id, ttl)

    async def tell_async(self, path: str, message: Any, *, trace_id: str | None = None) -> None:
        self.tell(path, message, trace_id=trace_id)

    def _timeout_of(self, parent: Envelope | None, timeout: float | None) -> float:
        if timeout is None:
            if parent is not None and parent.deadline is not None:
                return max(0.0, parent.deadline - self.clock.now())
            return self._runtime.default_timeout
        if not timeout > 0:
            msg = f"timeout must be a positive number of seconds, got {timeout!r}"
            raise ValueError(msg)
        return float(timeout)

    def _slot(self, path: str) -> AgentSlot:
        if self.state in ("stopping", "stopped"):
            msg = f"system {self.spec.id!r} is {self.state}"
            raise SystemNotRunningError(msg)
        return self._tree.slot(path)

    def _prepare(
        self,
        parent: Envelope | None,
        caller: str | None,
        path: str,
        message: Any,
        timeout: float | None,
        trace_id: str | None,
    ) -> tuple[Envelope | None, ExecutionResult | None]:
        slot = self._tree.slots.get(path) if self.state in _ACCEPTING else None
        if slot is None:
            slot = self._slot(path)  # raises the caller error
        if parent is None:
            if timeout is None:
                seconds = self._runtime.default_timeout
            else:
                seconds = self._timeout_of(None, timeout)
            chain: tuple[str, ...] = ()
            trace = trace_id or _ambient_trace()
        else:
            seconds = self._timeout_of(parent, timeout)
            chain = (*parent.chain, caller) if caller is not None else parent.chain
            trace = trace_id or parent.trace_id
        if chain and path in chain:
            cycle = " -> ".join((*chain, path))
            return None, ExecutionResult(
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
        if self._runtime.tracing is not None:
            env.otel_context = self._runtime.tracing.capture()
        slot.submit(env)
        return env, None

    def _ask(
        self,
        parent: Envelope | None,
        caller: str | None,
        path: str,
        message: Any,
        timeout: float | None,
        trace_id: str | None = None,
    ) -> ExecutionResult:
        env, early = self._prepare(parent, caller, path, message, timeout, trace_id)
        if early is not None:
            return early
        assert env is not None
        assert env.reply is not None
        if env.reply.wait(self.clock, env.deadline):
            return env.reply.result  # type: ignore[return-value]
        return self._expire(env, path, self._timeout_of(parent, timeout))

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
        self._send_tell(parent, caller, path, message, trace_id, None)

    def _send_tell(
        self,
        parent: Envelope | None,
        caller: str | None,
        path: str,
        message: Any,
        trace_id: str | None,
        ttl: float | None,
    ) -> None:
        slot = self._slot(path)
        trace = trace_id or (parent.trace_id if parent is not None else None) or _ambient_trace()
        deadline = self.clock.now() + ttl if ttl is not None else None
        env = Envelope(message, None, deadline, slot, trace)
        if self._runtime.tracing is not None:
            env.otel_context = self._runtime.tracing.capture()
        slot.submit(env)

    # -- dynamic children --------------------------------------------------------------------

    def start_child(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        """Add a child to a running supervisor (at the end of its children) and wait until it
        has started. Returns its path."""
        node = self._running_supervisor(supervisor)
        if not isinstance(spec, (ChildSpec, Supervisor)):
            msg = f"start_child takes a ChildSpec or Supervisor, got {type(spec).__name__}"
            raise TypeError(msg)
        self._tree.check_new_child(node, spec)
        future: Future[str] = Future()
        node.post(StartChild(spec, future))
        return future.result(timeout)

    def stop_child(self, path: str, *, timeout: float = 30.0) -> None:
        """Stop a child (it finishes its current message) and remove it: its path is unknown
        afterwards and messages still queued for it are answered."""
        self._slot_or_supervisor(path)
        child = self._tree.node(path)
        parent = child.parent
        if parent is None or parent is self._tree.guardian:
            msg = f"{path} is not a child of a supervisor in this tree"
            raise ValueError(msg)
        future: Future[None] = Future()
        parent.post(StopChild(child, future))
        future.result(timeout)

    def _running_supervisor(self, path: str) -> SupervisorNode:
        if self.state in ("stopping", "stopped"):
            msg = f"system {self.spec.id!r} is {self.state}"
            raise SystemNotRunningError(msg)
        return self._tree.supervisor(path)

    def _slot_or_supervisor(self, path: str) -> None:
        if self.state in ("stopping", "stopped"):
            msg = f"system {self.spec.id!r} is {self.state}"
            raise SystemNotRunningError(msg)
        self._tree.node(path)

    # -- inspecting --------------------------------------------------------------------------

    def serve_http(
        self, host: str = "127.0.0.1", port: int = 0, token: str | None = None
    ) -> HealthServer:
        """Serve /health, /tree, /metrics and the live tree page at / from a background thread.
        Binds to 127.0.0.1 by default; any other address requires a bearer token. Closed by
        shutdown() (or call .close())."""
        from ._http import serve_http  # noqa: PLC0415 - the HTTP server loads only when asked for

        server = serve_http(self, host=host, port=port, token=token)
        self._servers.append(server)
        return server

    def health(self) -> TreeHealth:
        return snapshot(self._tree, self.state)

    def dead_letters(self, path: str | None = None, reason: str | None = None) -> list[DeadLetter]:
        return self._runtime.dead_letters.letters(path, reason)

    def paths(self) -> list[str]:
        return list(self._tree.slots)


class PendingAsk:
    """An ask in flight (from System.ask_future)."""

    def __init__(
        self,
        system: System,
        env: Envelope | None,
        early: ExecutionResult | None,
        path: str,
        seconds: float,
    ) -> None:
        self._system = system
        self._env = env
        self._early = early
        self._path = path
        self._seconds = seconds

    def done(self) -> bool:
        return self._early is not None or (
            self._env is not None and self._env.reply is not None and self._env.reply.done
        )

    def result(self) -> ExecutionResult:
        """Wait for the answer; by the ask's deadline at the latest."""
        if self._early is not None:
            return self._early
        env = self._env
        assert env is not None
        assert env.reply is not None
        if env.reply.wait(self._system.clock, env.deadline):
            return env.reply.result  # type: ignore[return-value]
        return self._system._expire(env, self._path, self._seconds)


def _make_tracing(tracing: bool | Any) -> Tracing | None:
    if tracing is False or tracing is None:
        return None
    return Tracing(None if tracing is True else tracing)


def start(
    tree: Supervisor,
    *,
    clock: Clock | None = None,
    default_timeout: float = 30.0,
    start_timeout: float = 60.0,
    seed: int | None = None,
    tracing: bool | Any = False,
) -> System:
    """Start a tree: fallbacks first, then the root's children in declaration order, each
    started (on_start done) before the next. Returns the running System; raises
    TreeStartError if the root exhausts its restart budget while starting.

    clock: a FakeClock for tests. default_timeout: ask deadline when none is given.
    seed: seeds the jitter of backoffs. tracing: True (global OpenTelemetry tracer provider)
    or a TracerProvider: a span per message handled (needs the otel extra)."""
    system = System(tree, clock=clock, default_timeout=default_timeout, seed=seed, tracing=tracing)
    system._boot(start_timeout)
    return system
