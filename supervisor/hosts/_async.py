"""HostLoop: the event loop of one host thread, for an agent whose handler is `async def`.

Each host thread that runs an async handler owns its loop (made when its agent first returns
an awaitable, closed when the host ends), so what one async agent does reaches no other:
- a handler that blocks its loop (`time.sleep` in `async def handle`) is a hang of that host
  only: the watchdog finds it at its deadline and the host is abandoned like any hung thread;
- `SystemExit` / `KeyboardInterrupt` raised in a handler (or in a sync tool it awaits) ends
  that loop's `run_until_complete` with the exception: a crash of that host only;
- sync calls awaited through `asyncio.to_thread` run on the host's own small pool of daemon
  threads (8 at most), so hung tools of one agent starve no other agent's tools and never
  keep the process from exiting.

The cost of this design is one loop per async host (about 40 µs to make and 3 file
descriptors: an epoll fd and a self-pipe pair); a message to an async agent runs in the host
thread itself, with no hand-off to another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["TOOL_WORKERS", "DaemonExecutor", "HostLoop", "close_loop", "in_event_loop"]

TOOL_WORKERS = 8  # sync calls (asyncio.to_thread) one async agent may run at once
_T = TypeVar("_T")


def in_event_loop() -> bool:
    """True when called from a coroutine (a blocking call here would stall its loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Call:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - SystemExit too: it belongs to the awaiting handler
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)


class DaemonExecutor(ThreadPoolExecutor):
    """A bounded pool of daemon threads, made as needed (concurrent.futures' ThreadPoolExecutor
    joins its workers at interpreter exit, so one hung tool there blocks the exit forever).
    A ThreadPoolExecutor by type only, because asyncio's set_default_executor asks for one:
    it shares none of its machinery."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._queue: SimpleQueue[_Call | None] = SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._workers = 0
        self._closed = False

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                msg = "cannot schedule new calls: the agent's host has ended"
                raise RuntimeError(msg)
            self._queue.put(_Call(future, fn, args, kwargs))
            spawn = not self._idle.acquire(blocking=False) and self._workers < self._max
            if spawn:
                self._workers += 1
        if spawn:
            threading.Thread(target=self._work, name=self._name, daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                self._queue.put(None)  # wake the next worker: they all end
                with self._lock:
                    self._workers -= 1
                return
            call.run()
            del call
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls and let idle workers end; a hung call's thread ends when it
        returns. `wait` is not honoured: a host never waits for a tool that may never end."""
        with self._lock:
            self._closed = True
        if cancel_futures:
            while not self._queue.empty():
                call = self._queue.get_nowait()
                if call is not None:
                    call.future.cancel()
        self._queue.put(None)


async def _await(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


class HostLoop:
    """Invariants: used only from its host's thread, except cancel() (any thread); `task` is
    the handler running now (None between messages)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.executor = DaemonExecutor(TOOL_WORKERS, f"hivekeeper-tool:{name}")
        self.loop.set_default_executor(self.executor)
        self.task: asyncio.Task[Any] | None = None

    def run(self, awaitable: Awaitable[_T], attach: Callable[[HostLoop | None], None]) -> _T:
        """Run one handler's awaitable to its end on this thread. `attach` tells the host a
        cancellable handler is running (and None when it is over)."""
        task = self.loop.create_task(_await(awaitable))
        self.task = task
        attach(self)
        try:
            return self.loop.run_until_complete(task)
        finally:
            self.task = None
            attach(None)

    def cancel(self) -> None:
        """Cancel the running handler (from the watchdog's thread). A handler that blocks its
        loop sees the cancellation only when it yields; its host is abandoned meanwhile."""
        task = self.task
        if task is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(task.cancel)

    def close(self) -> None:
        """End the loop (on the host's thread, when the host ends). Tasks the agent left
        behind are cancelled and given a moment to finish; nothing here raises."""
        loop = self.loop
        if loop.is_closed() or loop.is_running():
            return
        close_loop(loop, self.executor)


def close_loop(loop: asyncio.AbstractEventLoop, executor: DaemonExecutor) -> None:
    """End a loop that is not running (on its thread): the tasks left on it are cancelled and
    given a moment to finish, its async generators closed, its tool threads let go; nothing
    here raises (its owner is going away anyway)."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
        loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), 1.0))
    except BaseException:  # noqa: BLE001 - teardown of a loop that is going away anyway
        pass
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()
