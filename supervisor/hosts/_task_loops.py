"""TaskLoops: the few shared event loops that carry every `isolation="task"` agent of a system.

A task agent has no thread of its own: its host is a handful of objects and, while it has
messages, one asyncio task on one of these loops (one loop thread per core, made when the
first task agent starts, ended when the system stops). That is what lets 100,000 agents live
in one process, where threads stop at a few tens of thousands.

Sharing a loop is what a task agent gives up, and a loop's neighbours are protected so:
- an exception of any kind in a handler (SystemExit and KeyboardInterrupt too) is caught in
  the agent's own task: a crash of that agent only; a callback of the agent's own that lets
  one escape the loop is logged and the loop runs on;
- a handler past its deadline is cancelled (it is an await away from ending);
- a handler that blocks its loop (time.sleep, a CPU-bound loop) is found by the stall watch:
  each loop must answer a tick within `stall_after` seconds, else it is retired. A fresh loop
  takes its place and every agent of the stalled loop that is not in the middle of a message
  moves to it (an agent must not keep loop-bound objects across messages, such as a client
  session made in on_start; make them per message, or use thread isolation). The blocking
  handler's own deadline makes it a hang, replaced as any hang is; the retired loop's thread
  ends once its last agent has left.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._events import emit
from ..delivery._messages import Reports
from ._async import TOOL_WORKERS, DaemonExecutor, close_loop

if TYPE_CHECKING:
    from ._task_host import TaskHost

__all__ = ["STALL_AFTER", "TaskLoop", "TaskLoops", "loops_of", "task_batch"]

STALL_AFTER = 1.0  # seconds a loop may go without running a tick before it counts as stalled
_WATCH_EVERY = 0.25  # how often the stall watch looks at each loop
_CLOSE_WAIT = 2.0  # seconds a loop thread is given to end at shutdown
_REPORT_DELAY = 0.005  # seconds a Started / Stopped report may wait to go with others


_batching = threading.local()  # .loops: the loops a batch on this thread has calls for


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


class TaskLoop:
    """One event loop on its own daemon thread. Invariants: `members` (the hosts placed here)
    is written only by TaskLoops under its lock; `retired` loops take no new agents."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self.executor = DaemonExecutor(TOOL_WORKERS * 4, f"hivekeeper-tool:{name}")
        self.loop.set_default_executor(self.executor)
        self.members: set[TaskHost] = set()
        self._inbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False  # a run of the inbox is posted to the loop
        self.closed = False
        # Started / Stopped reports made during a run of the inbox, per supervisor, posted as
        # one Reports message each at its end, after _REPORT_DELAY, or by the stall watch
        self._collecting = False  # a run of the inbox is on (the loop thread's flag)
        self._reports: dict[int, tuple[Any, list[Any]]] = {}
        self._reports_since = 0.0
        self._reports_lock = threading.Lock()
        self.retired = False
        self.ticked_at = time.monotonic()  # when the loop last ran its tick
        self.tick_pending = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run fn(*args) on this loop soon (any thread), in the order of the calls; False
        once the loop is closed. Calls that come while a run of them is pending wake the
        loop once (a wake-up is a write to its self-pipe: the cost of a thread hand-off)."""
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
            if self._inbox_scheduled or not self._inbox:
                return
            self._inbox_scheduled = True
        self._wake()

    def _wake(self) -> bool:
        try:
            self.loop.call_soon_threadsafe(self._run_inbox)
        except RuntimeError:  # closed meanwhile
            return False
        return True

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
                except Exception as exc:  # noqa: BLE001 - one bad call must not lose the others
                    emit("task_loop_error", level="error", loop=self.name,
                         reason=f"{type(exc).__name__}: {exc}")  # fmt: skip
        finally:
            self._collecting = False
            self.flush_reports()

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
            self.flush_reports()
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
            due = now - self._reports_since >= _REPORT_DELAY
        if due:
            self.flush_reports()

    def flush_reports(self) -> None:
        """Post the reports that wait (any thread)."""
        with self._reports_lock:
            if not self._reports:
                return
            batches = list(self._reports.values())
            self._reports = {}
        for supervisor, messages in batches:
            supervisor.post(messages[0] if len(messages) == 1 else Reports(tuple(messages)))

    def on_loop(self) -> bool:
        return threading.current_thread() is self.thread

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        while True:
            try:
                loop.run_forever()
            except BaseException as exc:  # noqa: BLE001 - an agent's stray callback: log, go on
                emit("task_loop_error", level="error", loop=self.name,
                     reason=f"{type(exc).__name__}: {exc}")  # fmt: skip
                continue
            break
        self._close()

    def _close(self) -> None:
        with self._inbox_lock:  # calls from now on are refused (the caller ends the host)
            self.closed = True
            self._inbox.clear()
        close_loop(self.loop, self.executor)

    def tick(self) -> None:
        self.ticked_at = time.monotonic()
        self.tick_pending = False

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)


class TaskLoops:
    """Places task hosts on loops (the least loaded live one), watches the loops for stalls
    and retires a stalled one; closed with its system (Runtime.close_services)."""

    def __init__(self, name: str, size: int | None = None, stall_after: float = STALL_AFTER):
        self.name = name
        self.size = size or max(1, min(os.cpu_count() or 1, 4))
        self.stall_after = stall_after
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._live: list[TaskLoop] = [self._new_loop() for _ in range(self.size)]
        self._retired: list[TaskLoop] = []
        self._next = 0
        self.stalls = 0
        self._closed = threading.Event()
        self._watch = threading.Thread(
            target=self._watch_loops, name=f"{name}-stall-watch", daemon=True
        )
        self._watch.start()

    def _new_loop(self) -> TaskLoop:
        return TaskLoop(f"{self.name}-tasks-{next(self._serial)}")

    def place(self, host: TaskHost, near: TaskLoop | None = None) -> TaskLoop:
        """The loop `host` runs on: `near` while it is live (the loop of its declared
        siblings: one loop runs their starts in declaration order), else the next live
        loop, round robin."""
        with self._lock:
            if near is not None and not near.retired:
                loop = near
            else:
                loop = self._live[self._next % len(self._live)]
                self._next += 1
            loop.members.add(host)
            return loop

    def leave(self, host: TaskHost, loop: TaskLoop) -> None:
        """`host` has ended: a retired loop with no agents left ends its thread."""
        with self._lock:
            loop.members.discard(host)
            done = loop.retired and not loop.members
            if done:
                self._retired.remove(loop)
        if done:
            loop.stop()

    def loops(self) -> list[TaskLoop]:
        with self._lock:
            return [*self._live, *self._retired]

    # -- the stall watch -------------------------------------------------------------------

    def _watch_loops(self) -> None:
        while not self._closed.wait(_WATCH_EVERY):
            now = time.monotonic()
            with self._lock:
                live = list(self._live)
            for loop in live:
                if loop.tick_pending:
                    if now - loop.ticked_at > self.stall_after:
                        self._retire(loop, now - loop.ticked_at)
                    continue
                loop.tick_pending = True
                loop.ticked_at = now
                loop.call(loop.tick)

    def _retire(self, stalled: TaskLoop, stalled_for: float) -> None:
        """Replace a stalled loop; move its agents that are between messages to the new one."""
        fresh = self._new_loop()
        with self._lock:
            if stalled not in self._live:
                return
            self._live[self._live.index(stalled)] = fresh
            stalled.retired = True
            self._retired.append(stalled)
            self.stalls += 1
            members = list(stalled.members)
        stalled.flush_reports()  # what its blocked run of the inbox had not sent yet
        emit("task_loop_stalled", level="error", loop=stalled.name, agents=len(members),
             reason=f"no tick for {stalled_for:.2f}s: a handler blocks its event loop",
             replaced_by=fresh.name)  # fmt: skip
        for host in members:
            if host.move_to(fresh):
                with self._lock:
                    stalled.members.discard(host)
                    fresh.members.add(host)

    def close(self) -> None:
        """End every loop (the system has stopped its agents); never raises."""
        self._closed.set()
        self._watch.join(_CLOSE_WAIT)
        for loop in self.loops():
            loop.stop()
        deadline = time.monotonic() + _CLOSE_WAIT
        for loop in self.loops():
            loop.thread.join(max(0.0, deadline - time.monotonic()))


def loops_of(runtime: Any) -> TaskLoops:
    """The system's task loops, made when its first task agent starts."""
    found: TaskLoops | None = runtime.services.get("task_loops")
    if found is not None:
        return found
    made: TaskLoops = runtime.service("task_loops", lambda: TaskLoops(runtime.name))
    return made
