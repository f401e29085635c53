"""System: a running supervision tree (its lifecycle, dynamic children and inspection; the
ask / tell API is in _asking.py), and start(), which makes one."""

from __future__ import annotations

import random
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any

from strategies import ExitKind

from .._clock import Clock, MonotonicClock
from .._events import emit
from .._exceptions import TreeStartError
from .._scheduler import Scheduler
from .._spec import ChildSpec, Supervisor
from ..delivery._dead_letters import DeadLetter, DeadLetterOffice
from ..delivery._messages import Exited, Shutdown, Started, Stopped
from ..delivery._runtime import Runtime
from ..delivery._slot import SlotState
from ..inspect._health import TreeHealth, snapshot
from ..store import Store
from ..supervision._states import NodeState, SystemState
from ..supervision._supervisor_actor import SupervisorActor
from ..supervision._tree import TreeIndex
from ._asking import Asking, PendingAsk
from ._options import make_tracing, seconds
from ._options import ray_address as ray_address_option
from ._store_setup import SystemStore
from ._tree_changes import TreeChanges

if TYPE_CHECKING:
    from collections.abc import Iterable

    from actors import ExecutionResult

    from ..inspect._http import HealthServer
    from ..inspect._http_guard import HttpLimits

__all__ = ["System"]


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
        ray_address: str | None = None,
        store: Store | str | None = None,
    ) -> None:
        if not isinstance(spec, Supervisor):
            msg = f"start() takes a Supervisor tree, got {type(spec).__name__}"
            raise TypeError(msg)
        default_timeout = seconds("default_timeout", default_timeout)
        ray_address = ray_address_option(ray_address)
        tracer = make_tracing(tracing)  # before the store: it may raise (no otel extra)
        self._store = SystemStore(spec, store)
        self.spec = spec
        self.clock: Clock = clock or MonotonicClock()
        self.state = SystemState.STARTING
        self.failure: str | None = None
        self._asking = Asking(spec.id, self.clock, lambda: self.state)
        self._runtime = Runtime(
            clock=self.clock,
            scheduler=Scheduler(self.clock),
            dead_letters=DeadLetterOffice(),
            default_timeout=default_timeout,
            ask=self._asking._ask,
            tell=self._asking._tell,
            ask_async=self._asking._ask_async,
            start_child=self.start_child,
            stop_child=self.stop_child,
            start_child_async=self.start_child_async,
            stop_child_async=self.stop_child_async,
            rng=random.Random(seed),
            tracing=tracer,
            name=spec.id,
            ray_address=ray_address,
            store=self._store.store,
        )
        try:
            self._store.attach(self._runtime.dead_letters)
            self._tree = TreeIndex(spec, self._runtime)
        except BaseException:
            self._store.close()
            raise
        self._asking.bind(self._runtime, self._tree)
        self._changes = TreeChanges(self._tree, self._asking)
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
        self.state = SystemState.RUNNING
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
            self._tree.root.state = NodeState.RUNNING
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
        if self.state != SystemState.STOPPING:
            self.state = SystemState.FAILED
        self._tree.root.state = NodeState.FAILED
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
        if self.state in (SystemState.STOPPING, SystemState.STOPPED):
            return
        failed = self.state == SystemState.FAILED
        self.state = SystemState.STOPPING
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
        self._runtime.close_services()  # no worker process outlives its system
        self._store.close()  # what is queued for it is committed first
        self.state = SystemState.STOPPED
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

    # -- asking (see Asking) -------------------------------------------------------------------

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
        default_timeout). Returns an ExecutionResult whatever the agent did; raises only for
        caller mistakes (UnknownPathError, SystemNotRunningError, ValueError, TypeError).
        idempotency_key (durable agents): a send with a key the agent's store has seen is
        not queued again; it is answered REJECTED (reason duplicate)."""
        return self._asking.ask(
            path, message, timeout=timeout, trace_id=trace_id, idempotency_key=idempotency_key
        )

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
        return self._asking.ask_future(
            path, message, timeout=timeout, trace_id=trace_id, idempotency_key=idempotency_key
        )

    async def ask_async(
        self,
        path: str,
        message: Any,
        *,
        timeout: float | None = None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionResult:
        """ask() for code running in an event loop: never blocks the loop."""
        return await self._asking.ask_async(
            path, message, timeout=timeout, trace_id=trace_id, idempotency_key=idempotency_key
        )

    def tell(
        self,
        path: str,
        message: Any,
        *,
        trace_id: str | None = None,
        ttl: float | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send without waiting. A tell that cannot be handled becomes a dead letter. To a
        durable agent it returns once the message is committed (a duplicate by
        idempotency_key is not queued again; StoreError if the store cannot keep it)."""
        self._asking.tell(
            path, message, trace_id=trace_id, ttl=ttl, idempotency_key=idempotency_key
        )

    async def tell_async(
        self,
        path: str,
        message: Any,
        *,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        await self._asking.tell_async(
            path, message, trace_id=trace_id, idempotency_key=idempotency_key
        )

    # -- dynamic children --------------------------------------------------------------------

    def start_child(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        """Add a child to a running supervisor (at the end of its children) and wait until it
        has started. Returns its path. Raises only HivekeeperErrors (and TypeError for a
        spec of the wrong type, ValueError for a bad timeout): UnknownPathError (no such
        supervisor), DuplicateChildError (the id is taken), ChildStartError (its __init__ /
        on_start failed or overran start_timeout: it is discarded, never restarted, and its
        supervisor is untouched; or a concurrent stop_child removed it first),
        SupervisorUnavailableError (the supervisor is not running or did not answer in time),
        SystemNotRunningError.

        Safe from an agent's handler (it blocks only that handler's thread; the supervisor
        never waits on it). From a sibling's on_start too: a new child's first start waits
        for no sibling."""
        return self._changes.start_child(supervisor, spec, timeout=timeout)

    async def start_child_async(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        """start_child() for code running in an event loop (one agent per conversation in an
        async server): the same checks, outcome and errors, awaited without blocking the
        loop or taking a thread. Cancelling the await does not undo the start."""
        return await self._changes.start_child_async(supervisor, spec, timeout=timeout)

    def stop_child(self, path: str, *, timeout: float = 30.0) -> None:
        """Stop a child (it finishes its current message) and remove it: its path is unknown
        afterwards and messages still queued for it are answered. Raises only HivekeeperErrors
        (and ValueError for a bad timeout): UnknownPathError (no such path, or a concurrent
        stop_child removed it first), NotAChildError (the root or a fallback),
        SupervisorUnavailableError, SystemNotRunningError."""
        self._changes.stop_child(path, timeout=timeout)

    async def stop_child_async(self, path: str, *, timeout: float = 30.0) -> None:
        """stop_child() for code running in an event loop: awaited, never blocking it."""
        await self._changes.stop_child_async(path, timeout=timeout)

    # -- inspecting --------------------------------------------------------------------------

    def serve_http(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        allowed_hosts: Iterable[str] | None = None,
        limits: HttpLimits | None = None,
    ) -> HealthServer:
        """Serve /health, /tree, /metrics and the live tree page at / from a background thread.
        Binds to 127.0.0.1 by default; any other address requires a bearer token. Answers only
        requests whose Host header is in `allowed_hosts` (default: loopback names and the
        bound address), within `limits` (an HttpLimits: connections, request time, backlog,
        URL length). Closed by shutdown() (or call .close())."""
        from ..inspect._http import serve_http  # noqa: PLC0415 - the HTTP server loads only when asked for

        server = serve_http(
            self, host=host, port=port, token=token, allowed_hosts=allowed_hosts, limits=limits
        )
        self._servers.append(server)
        return server

    def health(self) -> TreeHealth:
        return snapshot(self._tree, self.state)

    def dead_letters(self, path: str | None = None, reason: str | None = None) -> list[DeadLetter]:
        return self._runtime.dead_letters.letters(path, reason)

    def paths(self) -> list[str]:
        return list(self._tree.slots)
