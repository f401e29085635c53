"""ProcessRunner (`ChildSpec(isolation="process")`): the agent is built and runs in a worker
process; its slot, mailbox, breaker, fallbacks and deadlines stay here, with its host.

What crosses the boundary is pickled with cloudpickle (so factories may be lambdas or local
classes): a message that cannot cross is answered INVALID_INPUT, a result that cannot cross
INVALID_OUTPUT, and neither harms the worker. While a message runs, the host's thread serves
what the agent asks of the tree through its context (ask, tell, start_child, stop_child,
heartbeat), so an agent in a worker reaches every other agent.

The operating system enforces the boundary: a handler that overruns its deadline, or a worker
over its memory_limit_mb, is SIGKILLed (kill reasons deadline, memory), and a worker that dies
on its own (a segfault, os._exit, the OOM killer) is seen at once by the reaper: the message it
was running is answered FAILURE, the agent is restarted on a warm spare worker.
"""

from __future__ import annotations

import pickle
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import cloudpickle

from actors import ExecutionResult, ExecutionStatus, FailureReason

from .._events import emit
from ._context import HostContext
from ._outcome import RemoteCrash, describe
from ._worker import Channel
from ._worker_pool import WorkerPool

if TYPE_CHECKING:
    from ..delivery._durable import AgentDurability
    from ..delivery._envelope import Envelope
    from ._host_core import HostCore

__all__ = ["ProcessRunner", "RemoteWorker"]

_OPS = frozenset({"ask", "tell", "start_child", "stop_child", "time_left"})


class RemoteWorker(Protocol):
    """Where a runner's agent lives outside this thread: a worker process here
    (_worker_pool.WorkerProcess), or a Ray actor (_ray_pool.RayWorker). `label` names it in
    errors ("worker process 4711"); `on_exit` is called once, on any thread, when it ends."""

    on_exit: Callable[[Any], None] | None

    @property
    def pid(self) -> int | None: ...

    @property
    def conn(self) -> Channel: ...

    @property
    def label(self) -> str: ...

    @property
    def node_id(self) -> str | None: ...

    @property
    def actor_id(self) -> str | None: ...

    def alive(self) -> bool: ...

    def kill(self) -> None: ...

    def exit_description(self) -> str: ...

    def rss_mb(self) -> float | None: ...

    def close(self) -> None: ...


class ProcessRunner:
    """Invariants: `worker` is this incarnation's process from start() until close(); once
    `killed_for` is set it is being (or has been) SIGKILLed and never runs a message again."""

    isolation = "process"
    where = "worker process"  # in errors: "the message cannot cross to the worker process"

    def __init__(self, host: HostCore) -> None:
        self._host = host
        self.worker: RemoteWorker | None = None
        self._context = HostContext(host)
        self._lock = threading.Lock()
        self.killed_for: str | None = None
        self._crash_reason: FailureReason | None = None
        self._agent_state: str | None = None

    @property
    def pid(self) -> int | None:
        worker = self.worker
        return worker.pid if worker is not None else None

    def rss_mb(self) -> float | None:
        worker = self.worker
        return worker.rss_mb() if worker is not None else None

    @property
    def node_id(self) -> str | None:
        worker = self.worker
        return worker.node_id if worker is not None else None

    @property
    def actor_id(self) -> str | None:
        worker = self.worker
        return worker.actor_id if worker is not None else None

    def _take_worker(self) -> RemoteWorker:
        """A started worker for this incarnation (a warm spare when there is one)."""
        slot = self._host.slot
        pool = slot.runtime.service("workers", lambda: WorkerPool(slot.runtime.name))
        return pool.take(getattr(slot.spec.factory, "__module__", None))

    # -- the host's thread --------------------------------------------------------------------

    def start(self) -> None:
        slot = self._host.slot
        spec = slot.spec
        try:
            blob = cloudpickle.dumps((spec.factory, spec.args, spec.kwargs))
        except Exception as exc:
            msg = f"the factory or its arguments cannot cross to a {self.where}: {describe(exc)}"
            raise TypeError(msg) from exc
        worker = self._take_worker()
        with self._lock:
            self.worker = worker
            killed = self.killed_for
        worker.on_exit = self._exited
        if killed is not None or not worker.alive():
            worker.kill()
        self._send(("start", blob, slot.path, slot.id, spec.memory_limit_mb, list(sys.path)))
        reply = self._until("started", "start_failed")
        if reply[0] != "started":
            raise RemoteCrash(reply[1], FailureReason.MEMORY if reply[2] == "memory" else None)

    def call(self, env: Envelope) -> Any:
        host = self._host
        slot = host.slot
        message = (
            "call", env.message, env.trace_id, env.msg_id,
            env.fallback_reason if env.stage >= 0 else None,
            host.time_left(), slot.spec.message_timeout, env.prior_attempts + env.attempts,
        )  # fmt: skip
        try:
            blob = cloudpickle.dumps(message)
        except Exception as exc:  # noqa: BLE001 - the caller's message, not the agent's fault
            return ExecutionResult(
                status=ExecutionStatus.INVALID_INPUT,
                error=f"the message cannot cross to the {self.where}: {describe(exc)}",
                reason=FailureReason.INVALID_INPUT,
            )
        self._send_bytes(blob)
        reply = self._until("result", "bad_result", "crash")
        kind = reply[0]
        if kind == "result":
            if reply[2]:
                host.stop_requested = True
            return reply[1]
        if kind == "bad_result":
            return ExecutionResult(
                status=ExecutionStatus.INVALID_OUTPUT,
                error=reply[1],
                reason=FailureReason.INVALID_OUTPUT,
            )
        reason = FailureReason.MEMORY if reply[2] == "memory" else None
        self._crash_reason = reason
        raise RemoteCrash(reply[1], reason)

    def _until(self, *kinds: str) -> tuple[Any, ...]:
        """The worker's next reply of one of `kinds`; meanwhile, what the agent asks of the
        tree is served and its events are emitted here."""
        while True:
            reply = self._receive()
            kind = reply[0]
            if kind in kinds:
                return reply
            if kind == "beat":
                self._host.heartbeat()
            elif kind == "ctx":
                self._serve(reply[1], reply[2], reply[3])
            elif kind == "event":
                self._relay_event(dict(reply[1]))

    def _relay_event(self, fields: dict[str, Any]) -> None:
        name = str(fields.pop("event", "agent_event"))
        level = str(fields.pop("level", "info"))
        if name == "agent_state_changed":
            self._agent_state = fields.get("new")
        emit(name, level=level, **fields)

    def _serve(self, op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """What the agent asked of the tree, done here (on the host's thread) and answered."""
        try:
            if op not in _OPS:
                msg = f"unknown context operation {op!r}"
                raise ValueError(msg)
            member = getattr(self._context, op)
            value = member(*args, **kwargs) if callable(member) else member
            answer: tuple[Any, ...] = ("reply", True, value)
            blob = cloudpickle.dumps(answer)
        except Exception as exc:  # noqa: BLE001 - raised in the agent, where it belongs
            try:
                blob = cloudpickle.dumps(("reply", False, exc))
            except Exception:  # noqa: BLE001 - an exception that cannot cross: its text can
                blob = cloudpickle.dumps(("reply", False, RuntimeError(describe(exc))))
        self._send_bytes(blob)

    def stop(self) -> None:
        if self.worker is None or self.killed_for is not None:
            return
        self._send(("stop",))
        reply = self._until("stopped")
        if reply[0] == "stopped" and reply[1]:
            raise RemoteCrash(reply[1], None)

    def close(self) -> None:
        with self._lock:
            worker, self.worker = self.worker, None
        if worker is None:
            return
        if self._crash_reason is FailureReason.MEMORY and worker.alive():
            self._host.slot.stats.killed("memory")  # a worker that ran out is not reused
        worker.on_exit = None
        worker.close()

    # -- any thread ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """A handler in a worker is not cancelled but killed, when its host is abandoned."""

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.killed_for is not None:
                return
            self.killed_for = reason
            worker = self.worker
        if worker is not None and worker.alive():
            self._host.slot.stats.killed(reason)
            worker.kill()

    def agent_state(self) -> str | None:
        """The LLMAgent's state as its last agent_state_changed event told it."""
        return self._agent_state

    def state_to_save(self, durability: AgentDurability) -> bytes | None:
        """Never asked: persist=True is refused for agents in another process (_spec.py)."""
        return None

    def _exited(self, worker: RemoteWorker) -> None:
        """The reaper saw the worker end (its thread). If nobody killed it, it died on its
        own: a crash of this incarnation, reported through the host's own thread."""
        with self._lock:
            ours = worker is self.worker and self.killed_for is None
            if ours:
                self.killed_for = "died"
        if ours:
            self._host.slot.stats.killed("died")
            self._host.worker_died(f"{worker.label} died ({worker.exit_description()})")

    # -- the pipe -----------------------------------------------------------------------------

    def _send(self, message: tuple[Any, ...]) -> None:
        self._send_bytes(cloudpickle.dumps(message))

    def _send_bytes(self, blob: bytes) -> None:
        worker = self.worker
        assert worker is not None
        try:
            worker.conn.send_bytes(blob)
        except OSError as exc:
            raise self._gone() from exc

    def _receive(self) -> tuple[Any, ...]:
        worker = self.worker
        assert worker is not None
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        try:
            reply: tuple[Any, ...] = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - e.g. a result whose class the parent lacks
            return ("bad_result", f"the result cannot be read in the parent: {describe(exc)}")
        return reply

    def _gone(self) -> RemoteCrash:
        worker = self.worker
        assert worker is not None
        why = self.killed_for
        what = "died" if why in (None, "died") else f"was killed ({why})"
        return RemoteCrash(
            f"{worker.label} {what}: {worker.exit_description()}",
            FailureReason.MEMORY if why == "memory" else None,
        )
