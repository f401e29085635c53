"""The worker process of a process-isolated agent (`ChildSpec(isolation="process")`).

It runs one agent at a time for its parent's ProcessRunner, over one duplex pipe carrying
cloudpickled tuples:

    parent -> worker   ("import", module_names)           (a spare, warmed up ahead)
                       ("start", factory_blob, path, agent_id, memory_limit_mb)
                       ("call", message, trace_id, message_id, fallback_reason, time_left,
                        message_timeout, attempt)
                       ("reply", ok, value)           the answer to a ("ctx", ...) request
                       ("stop",)
    worker -> parent   ("started", pid) | ("start_failed", error, reason)
                       ("result", outcome, stop_requested) | ("bad_result", error)
                       | ("crash", error, reason)
                       ("ctx", op, args, kwargs)      self.context.ask/tell/... relayed
                       ("beat",)                      self.context.heartbeat()
                       ("stopped", error)

Killing it is the parent's answer to a hang or a leak (SIGKILL: nothing here needs to cooperate),
and it dies with the parent: PR_SET_PDEATHSIG on Linux, and EOF on the pipe otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import multiprocessing
import os
import pickle
import resource
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Protocol

import cloudpickle

from actors import Agent, ExecutionResult

__all__ = ["Channel", "serve", "worker_main"]

_PR_SET_PDEATHSIG = 1


def worker_main(conn: Connection) -> None:
    """The worker's whole life: serve its parent until told to stop or the pipe closes."""
    # What the fork server imported is shared with it, page for page, until something writes
    # to it. A full garbage collection writes to every object it scans, and the fork server's
    # own allocations bring each new worker closer to one (after ~10 forks every worker ran
    # one on its first allocations: 30-40 ms and ~15 MiB of private copies). Frozen objects
    # are never scanned: the collector sees only what this worker makes.
    gc.freeze()
    _die_with_parent()
    with contextlib.suppress(OSError):
        os.setsid()  # its own process group: a kill takes the agent's own subprocesses too
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us in order
    # daemonic for the parent (ended at its exit); not for the agent, which may start
    # processes of its own (multiprocessing refuses children to a daemonic process)
    with contextlib.suppress(Exception):
        multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    serve(conn)
    os._exit(0)  # no interpreter teardown: whatever the agent left running ends with us


class Channel(Protocol):
    """The worker's end of its link to the parent: a multiprocessing Connection, or the
    queues of a Ray actor (supervisor/hosts/_ray_pool.py)."""

    def send_bytes(self, buf: bytes) -> None: ...

    def recv_bytes(self) -> bytes: ...


def serve(conn: Channel) -> None:
    """Serve the parent over `conn` until told to stop or the link ends: build the agent, run
    its messages one at a time, relay its context calls and its events."""
    worker = _Worker(conn)
    _forward_events(worker)
    worker.serve()


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):  # Linux only; elsewhere the closed pipe ends us
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _forward_events(worker: _Worker) -> None:
    """The agent's events (tool calls, state changes, its own logs through emit) are the
    parent's to log and to hand to its sinks: sent there, never logged here."""
    import logging  # noqa: PLC0415

    import structlog  # noqa: PLC0415

    from actors._events import add_sink  # noqa: PLC0415

    def drop(*_: Any) -> Any:
        raise structlog.DropEvent

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL), processors=[drop]
    )

    def forward(event: dict[str, Any]) -> None:
        with contextlib.suppress(Exception), worker.lock:
            worker.send("event", event)

    add_sink(forward)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    from ._outcome import describe  # noqa: PLC0415 - the parent's wording, redacted

    return describe(exc)


class _Worker:
    def __init__(self, conn: Channel) -> None:
        self.conn = conn
        self.lock = threading.RLock()  # one exchange on the pipe at a time
        self.agent: Agent | None = None
        self.context: WorkerContext | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        # True while the parent waits on a start, a message or a stop, and so serves what
        # the agent asks of the tree; between them nobody listens for a context call
        self.serving = False

    def _finish(self, reply: bytes) -> None:
        """The last reply to a start, a message or a stop: from now until the next one, the
        parent serves no context call (one made meanwhile is refused, not lost)."""
        with self.lock:
            self.serving = False
            self.conn.send_bytes(reply)

    def send(self, *message: Any) -> None:
        self.conn.send_bytes(cloudpickle.dumps(message))

    def receive(self) -> tuple[Any, ...]:
        message: tuple[Any, ...] = pickle.loads(self.conn.recv_bytes())
        return message

    def serve(self) -> None:
        while True:
            try:
                message = self.receive()
            except (EOFError, OSError):
                return  # the parent is gone
            kind = message[0]
            self.serving = kind in ("start", "call", "stop")
            if kind == "start":
                self._start(*message[1:])
            elif kind == "call":
                self._call(*message[1:])
            elif kind == "import":  # a warm spare loads the agents' modules ahead of time
                for name in message[1]:
                    with contextlib.suppress(Exception):
                        importlib.import_module(name)
            elif kind == "stop":
                self._stop()
                return

    def _start(
        self,
        blob: bytes,
        path: str,
        agent_id: str,
        memory_limit_mb: int | None,
        sys_path: list[str],
    ) -> None:
        try:
            # the parent's import path now (a spare was started earlier), and no stale
            # directory listings: a module created since then is importable here too
            sys.path[:] = [*sys_path, *(p for p in sys.path if p not in sys_path)]
            importlib.invalidate_caches()
            if memory_limit_mb is not None:
                limit = memory_limit_mb * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            factory, args, kwargs = pickle.loads(blob)
            agent = factory(*args, **dict(kwargs))
            if not isinstance(agent, Agent):
                msg = f"factory of {path} returned {type(agent).__name__}, not an Agent"
                raise TypeError(msg)
            self.context = WorkerContext(self, path, agent_id)
            agent.attach_context(self.context)
            agent.on_start()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent: a crash at start
            reason = "memory" if isinstance(exc, MemoryError) else None
            self._finish(cloudpickle.dumps(("start_failed", _describe(exc), reason)))
            return
        self.agent = agent
        self._finish(cloudpickle.dumps(("started", os.getpid())))

    def _call(
        self,
        message: Any,
        trace_id: str,
        message_id: int,
        fallback_reason: str | None,
        time_left: float | None,
        message_timeout: float | None,
        attempt: int,
    ) -> None:
        from ._runner import validate_input  # noqa: PLC0415

        agent, context = self.agent, self.context
        assert agent is not None
        assert context is not None
        context.begin(trace_id, message_id, fallback_reason, time_left, message_timeout, attempt)
        try:
            message, refused = validate_input(agent, message)
            outcome: Any = refused if refused is not None else agent.handle(message)
            if hasattr(type(outcome), "__await__"):
                outcome = self._await(outcome)
        except BaseException as exc:  # noqa: BLE001 - a crash of this agent, reported
            reason = "memory" if isinstance(exc, MemoryError) else None
            self._finish(cloudpickle.dumps(("crash", _describe(exc), reason)))
            return
        finally:
            stop = context.end()
        try:
            blob = cloudpickle.dumps(("result", outcome, stop))
        except BaseException as exc:  # noqa: BLE001 - an answer that cannot cross is the agent's fault
            why = f"the result cannot cross to the parent: {_describe(exc)}"
            self._finish(cloudpickle.dumps(("bad_result", why)))
            return
        self._finish(blob)

    def _await(self, awaitable: Any) -> Any:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()

        async def run() -> Any:
            return await awaitable

        return self.loop.run_until_complete(run())

    def _stop(self) -> None:
        error = None
        if self.agent is not None:
            try:
                self.agent.on_stop()
            except BaseException as exc:  # noqa: BLE001 - a failing on_stop hook is reported
                error = _describe(exc)
        with contextlib.suppress(OSError):
            self._finish(cloudpickle.dumps(("stopped", error)))
        sys.stdout.flush()


class WorkerContext:
    """The AgentContext of an agent in a worker process: what concerns the rest of the tree
    (ask, tell, start_child, stop_child, heartbeat) is relayed to the parent's host."""

    def __init__(self, worker: _Worker, path: str, agent_id: str) -> None:
        self._worker = worker
        self._path = path
        self._agent_id = agent_id
        self._trace_id: str | None = None
        self._fallback_reason: str | None = None
        self._deadline: float | None = None
        self._message_timeout: float | None = None
        self._attempt = 0
        self._stop = False

    def begin(
        self,
        trace_id: str,
        message_id: int,
        fallback_reason: str | None,
        time_left: float | None,
        message_timeout: float | None,
        attempt: int = 1,
    ) -> None:
        self._trace_id = trace_id
        self._attempt = attempt
        self._fallback_reason = fallback_reason
        self._deadline = time.monotonic() + time_left if time_left is not None else None
        self._message_timeout = message_timeout
        self._stop = False

    def end(self) -> bool:
        self._trace_id = self._fallback_reason = self._deadline = None
        self._attempt = 0
        return self._stop

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def redelivered(self) -> bool:
        return self._attempt > 1

    def mark_dirty(self) -> None:
        """Nothing to mark: persist=True is for thread agents only (_spec.py)."""

    @property
    def path(self) -> str:
        return self._path

    @property
    def agent_id(self) -> str:
        return self._agent_id

    @property
    def trace_id(self) -> str | None:
        return self._trace_id

    @property
    def fallback_reason(self) -> str | None:
        return self._fallback_reason

    @property
    def time_left(self) -> float | None:
        """Asked of the parent, whose clock the deadlines follow (a test's FakeClock too)."""
        if self._trace_id is None:
            return None
        left: float | None = self._relay("time_left")
        return left

    def _relay(self, op: str, *args: Any, **kwargs: Any) -> Any:
        worker = self._worker
        with worker.lock:
            if not worker.serving:
                msg = (
                    f"self.context.{op}() outside a message, on_start or on_stop: in a worker "
                    "process or Ray actor the tree is reached only while one of them runs"
                )
                raise RuntimeError(msg)
            worker.send("ctx", op, args, kwargs)
            _, ok, value = worker.receive()
        if not ok:
            raise value
        return value

    def ask(
        self, path: str, message: Any, *, timeout: float | None = None, trace_id: str | None = None
    ) -> ExecutionResult:
        if _in_event_loop():
            msg = (
                "self.context.ask() blocks, and this handler runs on an event loop: use "
                "`await self.context.ask_async(...)` in an async handler"
            )
            raise RuntimeError(msg)
        result: ExecutionResult = self._relay(
            "ask", path, message, timeout=timeout, trace_id=trace_id
        )
        return result

    async def ask_async(
        self, path: str, message: Any, *, timeout: float | None = None, trace_id: str | None = None
    ) -> ExecutionResult:
        return await asyncio.to_thread(self.ask, path, message, timeout=timeout, trace_id=trace_id)

    def tell(self, path: str, message: Any, *, trace_id: str | None = None) -> None:
        self._relay("tell", path, message, trace_id=trace_id)

    def start_child(self, supervisor: str, spec: Any, *, timeout: float | None = None) -> str:
        made: str = self._relay("start_child", supervisor, spec, timeout=timeout)
        return made

    def stop_child(self, path: str, *, timeout: float | None = None) -> None:
        self._relay("stop_child", path, timeout=timeout)

    async def start_child_async(
        self, supervisor: str, spec: Any, *, timeout: float | None = None
    ) -> str:
        return await asyncio.to_thread(self.start_child, supervisor, spec, timeout=timeout)

    async def stop_child_async(self, path: str, *, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.stop_child, path, timeout=timeout)

    def stop(self) -> None:
        self._stop = True

    def heartbeat(self) -> None:
        if self._message_timeout is not None and self._deadline is not None:
            self._deadline = time.monotonic() + self._message_timeout
        with self._worker.lock:
            self._worker.send("beat")
