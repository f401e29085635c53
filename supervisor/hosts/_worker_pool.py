"""Worker processes of one system: started ahead (a warm spare, so a restart does not pay for
a process start), watched (one reaper thread waits on every worker's sentinel, so a worker
that dies on its own is known at once, not by polling) and all ended when the system stops.

Start method: forkserver. The parent is multi-threaded (every agent is a thread), so a plain
fork may copy a lock some other thread holds and deadlock the child; spawn is ~4x slower to
start here. The fork server is forked once, before any of our threads exist in it, and
preloads the worker module, so each worker starts from a clean, already-imported process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing import spawn
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from typing import Any

import cloudpickle

from ._worker import worker_main

__all__ = ["WorkerPool", "WorkerProcess", "process_rss_mb", "report_exit"]

_SPARES = 1
_context_lock = threading.Lock()
_context: ForkServerContext | None = None


_WORKER_NAME = "hivekeeper-worker"


def _mp_context() -> ForkServerContext:
    global _context  # noqa: PLW0603 - one fork server per process, made on first use
    with _context_lock:
        if _context is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["supervisor.hosts._worker"])
            _skip_main_module_in_workers()
            _context = ctx
        return _context


def _skip_main_module_in_workers() -> None:
    """multiprocessing re-imports the parent's __main__ in every forkserver/spawn child, so a
    user's script without an `if __name__ == "__main__":` guard would start its whole tree
    again in each worker. A worker needs nothing from __main__ (factories and messages cross
    with cloudpickle, by value), so for our workers, and only ours (by process name), the
    main module is left out of what the child prepares."""
    original = spawn.get_preparation_data

    def preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        if name.startswith(_WORKER_NAME):
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
        return data

    spawn.get_preparation_data = preparation_data


def process_rss_mb(pid: int) -> float | None:
    """A process's resident memory, from /proc (Linux); None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def report_exit(worker: Any) -> None:
    """Tell a worker's owner (its on_exit) that it ended; on a reaper's thread, which a
    failing callback never ends."""
    if worker is not None and worker.on_exit is not None:
        with contextlib.suppress(Exception):
            worker.on_exit(worker)


class WorkerProcess:
    """One worker: its process and the parent's end of its pipe. `on_exit` is called (on the
    reaper's thread) when the process ends, however it ends."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pid: int = process.pid
        self.on_exit: Callable[[Any], None] | None = None
        self._join_lock = threading.Lock()

    node_id = None  # this machine (a Ray actor's would say which node)
    actor_id = None

    @property
    def label(self) -> str:
        return f"worker process {self.pid}"

    def alive(self) -> bool:
        with self._join_lock:
            return bool(self.process.is_alive())

    def kill(self) -> None:
        """SIGKILL its whole process group (it leads one: what the agent started goes too)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:  # not (yet) its own group leader
            with contextlib.suppress(ProcessLookupError, OSError):
                os.kill(self.pid, signal.SIGKILL)

    def exit_description(self) -> str:
        """How it ended. One thread at a time: the exit status is read from the fork server's
        pipe once (a second, concurrent reader would see EOF, which multiprocessing reports as
        exit code 255)."""
        with self._join_lock:
            self.process.join(1.0)
            code = self.process.exitcode
        if code is None:
            return "still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def rss_mb(self) -> float | None:
        return process_rss_mb(self.pid)

    def close(self) -> None:
        """Make sure it is gone (on the owner's thread): a last chance to exit, then SIGKILL."""
        with contextlib.suppress(OSError):
            self.conn.close()
        with self._join_lock:
            self.process.join(2.0)
            ended = self.process.exitcode is not None
        if not ended:
            self.kill()
            with self._join_lock:
                self.process.join(5.0)


class WorkerPool:
    """Invariant: every worker this pool started is in `_live` until its process ended."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._spares: deque[WorkerProcess] = deque()
        self._live: dict[int, WorkerProcess] = {}  # sentinel -> worker
        self._closed = False
        self._modules: dict[str, None] = {}  # agents' modules a spare imports (ordered set)
        self._filling = False  # a refill thread is starting spares
        self._wake_r, self._wake_w = os.pipe()
        self._reaper = threading.Thread(target=self._reap, name="hivekeeper-reaper", daemon=True)
        self._reaper.start()

    def take(self, module: str | None = None) -> WorkerProcess:
        """A started worker: a warm spare if there is one (and another one is started in the
        background to take its place), else a new one now. `module`, the agent's module, is
        imported by every spare from now on, so a restart does not pay for the import."""
        with self._lock:
            if module is not None and module != "__main__":
                self._modules.setdefault(module, None)
            if self._closed:
                msg = "the system is stopping: no new worker processes"
                raise RuntimeError(msg)
            worker = self._spares.popleft() if self._spares else None
            refill = not self._filling
            self._filling = True
        if worker is None or not worker.alive():
            worker = self._start()
        if refill:
            threading.Thread(target=self._refill, name="hivekeeper-spares", daemon=True).start()
        return worker

    def _refill(self) -> None:
        """Start spares until there are enough (one refill thread at a time)."""
        try:
            self._fill()
        finally:
            with self._lock:
                self._filling = False

    def _fill(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            while True:
                with self._lock:
                    if self._closed or len(self._spares) >= _SPARES:
                        return
                spare = self._start()
                with self._lock:
                    modules = tuple(self._modules)
                if modules:
                    spare.conn.send_bytes(cloudpickle.dumps(("import", modules)))
                with self._lock:
                    if self._closed:
                        spare.kill()
                        return
                    self._spares.append(spare)

    def _start(self) -> WorkerProcess:
        ctx = _mp_context()
        parent_end, child_end = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=worker_main, args=(child_end,), name=f"{_WORKER_NAME}:{self._name}"
        )
        process.daemon = True
        with self._lock:
            if self._closed:  # close() has taken its list of workers: none may start now
                msg = "the system is stopping: no new worker processes"
                raise RuntimeError(msg)
            process.start()
            worker = WorkerProcess(process, parent_end)
            self._live[process.sentinel] = worker
            os.write(self._wake_w, b"w")  # the reaper now waits on this sentinel too
        child_end.close()
        return worker

    def _reap(self) -> None:
        while True:
            with self._lock:
                if self._closed and not self._live:
                    return
                sentinels = list(self._live)
            ready = wait([self._wake_r, *sentinels])
            for fd in ready:
                if fd == self._wake_r:
                    os.read(self._wake_r, 4096)
                    continue
                with self._lock:
                    worker = self._live.pop(fd, None) if isinstance(fd, int) else None
                report_exit(worker)

    def close(self) -> None:
        """End every worker (spares and any left running) and the reaper."""
        with self._lock:
            self._closed = True
            spares = list(self._spares)
            self._spares.clear()
            live = list(self._live.values())
        for worker in spares:
            worker.kill()
        for worker in live:
            worker.kill()
        for worker in {*spares, *live}:
            worker.close()
        os.write(self._wake_w, b"w")
        self._reaper.join(5.0)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
