"""AgentActor: what runs in the Ray worker process of a Ray agent. It serves the worker
protocol of _worker.py (the same code a worker process runs) on a thread of its own, fed by
Ray calls instead of a pipe: `put` hands it the parent's next message (numbered: a threaded
actor may run calls out of order), `take` returns the worker's next reply, `exchange` does
both in one round trip, and `park` never returns, so the parent learns of the actor's death
from its failing ref."""

from __future__ import annotations

import os
import queue
import threading
from typing import Any

from ._worker import serve

__all__ = ["AgentActor", "remote_class"]

_MAX_CONCURRENCY = 8  # take/exchange, put, park, info, with room to spare


class _QueueLink:
    """The worker's end, inside the actor: what the parent put, what the worker replies."""

    def __init__(self, inbox: queue.Queue[bytes], outbox: queue.Queue[bytes]) -> None:
        self._inbox = inbox
        self._outbox = outbox

    def send_bytes(self, buf: bytes) -> None:
        self._outbox.put(buf)

    def recv_bytes(self) -> bytes:
        return self._inbox.get()


class AgentActor:
    """A threaded Ray actor serving one agent (made a Ray actor class by remote_class())."""

    def __init__(self) -> None:
        self._inbox: queue.Queue[bytes] = queue.Queue()
        self._outbox: queue.Queue[bytes] = queue.Queue()
        self._order = threading.Condition()
        self._next = 0  # a threaded actor may run calls out of order: puts are numbered
        link = _QueueLink(self._inbox, self._outbox)
        threading.Thread(target=serve, args=(link,), name="hivekeeper-agent", daemon=True).start()

    def info(self) -> tuple[int, str, str]:
        import ray  # noqa: PLC0415

        context = ray.get_runtime_context()
        return os.getpid(), context.get_node_id(), context.get_actor_id() or ""

    def put(self, seq: int, blob: bytes) -> None:
        with self._order:
            self._order.wait_for(lambda: self._next == seq)
            self._inbox.put(blob)
            self._next += 1
            self._order.notify_all()

    def exchange(self, seq: int, blob: bytes) -> bytes:
        self.put(seq, blob)
        return self._outbox.get()

    def take(self) -> bytes:
        return self._outbox.get()

    def park(self) -> None:
        """Never returns: the parent holds its ref, which fails when the actor dies."""
        threading.Event().wait()


_actor_class_lock = threading.Lock()
_actor_class: Any = None


def remote_class() -> Any:
    """AgentActor as a Ray actor class (made once, on first use: Ray is an optional extra)."""
    global _actor_class  # noqa: PLW0603
    import ray  # noqa: PLC0415

    with _actor_class_lock:
        if _actor_class is None:
            _actor_class = ray.remote(max_concurrency=_MAX_CONCURRENCY)(AgentActor)
        return _actor_class
