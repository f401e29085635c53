"""TaskLoop: one event loop, on a daemon thread of its own, that carries task agents (see
_task_loops.py for the pool and the stall watch).

What crosses to the loop from other threads goes through its inbox: calls that come while a
run of them is pending wake the loop once (a wake-up is a write to its self-pipe, the cost of
a thread hand-off), and a thread that starts or stops hundreds of agents in one step
(`task_batch()`) wakes each loop once at its end. The Started / Stopped reports its hosts make
during a run of the inbox go to each supervisor as one Reports message.

Tasks an agent creates are tagged with its host (a task factory reading a context variable
its drain sets), so they can be cancelled when that incarnation ends: what one agent leaves
running does not live on in its neighbours' loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import TYPE_CHECKING, Any

from .._events import emit
from ..delivery._messages import Reports
from ._async import TOOL_WORKERS, DaemonExecutor, close_loop
from ._outcome import describe

if TYPE_CHECKING:
    from ._task_host import TaskHost

__all__ = ["TaskLoop", "cancel_spawned", "running_host", "task_batch"]

_REPORT_DELAY = 0.005  # seconds a Started / Stopped report may wait to go with others

_batching = threading.local()  # .loops: the loops a batch on this thread has calls for
# the host whose drain (and so whose handler) runs in this context: tasks it creates are its
running_host: contextvars.ContextVar[TaskHost | None] = contextvars.ContextVar(
    "hivekeeper_task_host", default=None
)


@contextlib.contextmanager
def task_batch() -> Iterator[None]:
    """Calls made to task loops on this thread inside the block wake each loop once, at its
    end (a supervisor starting or stopping hundreds of task agents in one step)."""
    if getattr(_batching, "loops", None) is not None:  # nested: the outer block wakes them
        yield
        return
    loops: set[TaskLoop] = set()
    _batching.loops = loops
    try:
        yield
    finally:
        _batching.loops = None
        for loop in loops:
            loop.flush()


def _tagging_factory(
    loop: asyncio.AbstractEventLoop,
    coro: Generator[Any, None, Any] | Coroutine[Any, Any, Any],
    **kwargs: Any,
) -> asyncio.Task[Any]:
    task = asyncio.Task(coro, loop=loop, **kwargs)
    host = running_host.get()
    if host is not None:
        if host.spawned is None:
            host.spawned = weakref.WeakSet()
        host.spawned.add(task)
    return task


class TaskLoop:
    """Invariants: `members` (the hosts placed here, in placement order) is written only by
    TaskLoops under its lock; a `retired` loop takes no new agents; `_reports` only under
    `_reports_lock`; `_collecting` only by the loop thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.loop.set_task_factory(_tagging_factory)
        self.executor = DaemonExecutor(TOOL_WORKERS * 4, f"hivekeeper-tool:{name}")
        self.loop.set_default_executor(self.executor)
        self.members: dict[TaskHost, None] = {}
        self._inbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False  # a run of the inbox is posted to the loop
        self.closed = False
        self._stopping = False  # set by stop(): only then does the thread end
        self._collecting = False  # a run of the inbox is on
        self._reports: dict[int, tuple[Any, list[Any]]] = {}
        self._reports_since = 0.0
        self._reports_lock = threading.Lock()
        self.retired = False
        self.ticked_at = time.monotonic()  # when the loop last showed progress
        self.tick_pending = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    # -- calls from other threads ----------------------------------------------------------

    def call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run fn(*args) on this loop soon (any thread), in the order of the calls; False
        once the loop is closed."""
        with self._inbox_lock:
            if self.closed:
                return False
            self._inbox.append((fn, args))
            if self._inbox_scheduled:
                return True
            batch: set[TaskLoop] | None = getattr(_batching, "loops", None)
            if batch is not None:  # woken once, at the end of the batch
                batch.add(self)
                return True
            self._inbox_scheduled = True
        return self._wake()

    def flush(self) -> None:
        """Wake the loop for the calls a batch left in its inbox."""
        with self._inbox_lock:
            if self._inbox_scheduled or not self._inbox or self.closed:
                return
            self._inbox_scheduled = True
        self._wake()

    def _wake(self) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._run_inbox)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def stop(self) -> None:
        """End the loop's thread (once its agents are gone)."""
        self._stopping = True
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)

    # -- on the loop -----------------------------------------------------------------------

    def on_loop(self) -> bool:
        return threading.current_thread() is self.thread

    def progress(self) -> None:
        """The loop moved on (a call of the inbox, a message handled): it is not stalled."""
        self.ticked_at = time.monotonic()

    def tick(self) -> None:
        self.progress()
        self.tick_pending = False

    def _run_inbox(self) -> None:
        inbox = self._inbox
        with self._inbox_lock:
            self._inbox_scheduled = False
            batch = list(inbox)
            inbox.clear()
        self._collecting = True
        try:
            for fn, args in batch:
                try:
                    fn(*args)
                except BaseException as exc:  # noqa: BLE001 - one bad call must not lose the rest
                    emit("task_loop_error", level="error", loop=self.name,
                         reason=describe(exc))  # fmt: skip
                self.ticked_at = time.monotonic()
        finally:
            self._collecting = False
            self.flush_reports()

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        while not self._stopping:  # an agent's loop.stop() or stray exception: run on
            try:
                loop.run_forever()
            except BaseException as exc:  # noqa: BLE001 - an agent's stray callback: log, go on
                emit("task_loop_error", level="error", loop=self.name,
                     reason=describe(exc))  # fmt: skip
        with self._inbox_lock:  # calls from now on are refused (the caller ends the host)
            self.closed = True
            self._inbox.clear()
        close_loop(loop, self.executor)

    # -- reports to supervisors ------------------------------------------------------------

    def report(self, supervisor: Any, message: Any, batchable: bool) -> None:
        """Send a host's report to its supervisor (`supervisor.post`). During a run of the
        inbox a Started or Stopped waits, and goes with the others to that supervisor as one
        Reports message: at the end of the run, once the first has waited _REPORT_DELAY
        (the next start may be slow), or when the stall watch finds the loop blocked (by
        an on_start that never returns: the others' reports must not wait for it). Any
        other report first sends what waits, so a supervisor sees each child's reports in
        the order they were made."""
        if not (self._collecting and self.on_loop()):
            supervisor.post(message)
            return
        if not batchable:
            with self._reports_lock:
                self._post_reports()
                supervisor.post(message)
            return
        now = time.monotonic()
        with self._reports_lock:
            pending = self._reports
            if not pending:
                self._reports_since = now
            entry = pending.get(id(supervisor))
            if entry is None:
                pending[id(supervisor)] = (supervisor, [message])
            else:
                entry[1].append(message)
            if now - self._reports_since >= _REPORT_DELAY:
                self._post_reports()

    def flush_reports(self) -> None:
        """Post the reports that wait (any thread)."""
        with self._reports_lock:
            self._post_reports()

    def _post_reports(self) -> None:
        """The lock held: a post is a non-blocking tell, and posting under the lock keeps
        reports in the order they were made, whichever thread sends them."""
        if not self._reports:
            return
        batches = list(self._reports.values())
        self._reports = {}
        for supervisor, messages in batches:
            supervisor.post(messages[0] if len(messages) == 1 else Reports(tuple(messages)))


def cancel_spawned(spawned: weakref.WeakSet[asyncio.Task[Any]]) -> None:
    """Cancel the tasks an ended agent left behind (on their loop's thread)."""
    for task in list(spawned):
        if not task.done():
            task.cancel()
