"""TaskLoops: the few shared event loops that carry every `isolation="task"` agent of a system.

A task agent has no thread of its own: its host is a handful of objects and, while it has
messages, one asyncio task on one of these loops (one loop thread per core, at most 4, made
when the first task agent starts, ended when the system stops). That is what lets 100,000
agents live in one process, where threads stop at a few tens of thousands. One loop is
_task_loop.py; this is the pool, the placement of hosts and the stall watch.

Sharing a loop is what a task agent gives up, and a loop's neighbours are protected so:
- an exception of any kind in a handler (SystemExit and KeyboardInterrupt too) is caught in
  the agent's own task: a crash of that agent only; a callback of the agent's own that lets
  one escape the loop is logged and the loop runs on (an agent's loop.stop() too);
- a handler past its deadline is cancelled (it is an await away from ending), and the tasks
  an incarnation created are cancelled when it ends;
- a handler that blocks its loop (time.sleep, a CPU-bound loop) is found by the stall watch:
  a loop must show progress (a call of its inbox run, a message handled, a tick) within
  `stall_after` seconds, else it is retired. A fresh loop takes its place and every agent of
  the stalled loop that is not in the middle of a message moves to it, in placement order; one
  that was busy moves when its message ends (an agent must not keep loop-bound objects across
  messages, such as a client session made in on_start; make them per message, or use thread
  isolation). The blocking handler's own deadline makes it a hang, replaced as any hang is;
  the retired loop's thread ends once its last agent has left.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from .._events import emit
from ._task_loop import TaskLoop, task_batch

if TYPE_CHECKING:
    from ._task_host import TaskHost

__all__ = ["STALL_AFTER", "TaskLoop", "TaskLoops", "loops_of", "task_batch"]

STALL_AFTER = 1.0  # seconds a loop may go without progress before it counts as stalled
_WATCH_EVERY = 0.25  # how often the stall watch looks at each loop
_CLOSE_WAIT = 2.0  # seconds a loop thread is given to end at shutdown


class TaskLoops:
    """Places task hosts on loops (next to their declared siblings, else round robin),
    watches the loops for stalls and retires a stalled one; closed with its system
    (Runtime.close_services)."""

    def __init__(self, name: str, size: int | None = None, stall_after: float = STALL_AFTER):
        self.name = name
        self.size = size or max(1, min(os.cpu_count() or 1, 4))
        self.stall_after = stall_after
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._live: list[TaskLoop] = [self._new_loop() for _ in range(self.size)]
        self._retired: list[TaskLoop] = []
        self._next = 0
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
            loop.members[host] = None
            return loop

    def leave(self, host: TaskHost, loop: TaskLoop) -> None:
        """`host` has ended: a retired loop with no agents left ends its thread."""
        with self._lock:
            loop.members.pop(host, None)
            done = self._emptied_locked(loop)
        if done:
            loop.stop()

    def _emptied_locked(self, loop: TaskLoop) -> bool:
        """Is `loop` retired with no agent left (then forget it: the caller stops it)?"""
        done = loop.retired and not loop.members and loop in self._retired
        if done:
            self._retired.remove(loop)
        return done

    def rehome(self, host: TaskHost, old: TaskLoop) -> bool:
        """Move `host` off the retired loop `old` to a live one, if it is between messages
        (TaskHost.move_to); membership changes before anything is posted to the new loop."""
        with self._lock:
            if self._closed.is_set() or host not in old.members:
                return False
            new = self._live[self._next % len(self._live)]
            self._next += 1
            new.members[host] = None
            old.members.pop(host, None)
        if not host.move_to(new):
            with self._lock:  # busy (or ended): it stays, and moves when its message ends
                new.members.pop(host, None)
                if not host.finished:
                    old.members[host] = None
            return False
        with self._lock:
            done = self._emptied_locked(old)
        if done:
            old.stop()
        return True

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
                loop.call(loop.tick)

    def _retire(self, stalled: TaskLoop, stalled_for: float) -> None:
        """Replace a stalled loop; move its agents that are between messages to the new one
        (in placement order: those not started yet start in declaration order there)."""
        with self._lock:
            if stalled not in self._live:
                return
            fresh = self._new_loop()
            self._live[self._live.index(stalled)] = fresh
            stalled.retired = True
            self._retired.append(stalled)
            members = list(stalled.members)
        stalled.flush_reports()  # what its blocked run of the inbox had not sent yet
        emit("task_loop_stalled", level="error", loop=stalled.name, agents=len(members),
             reason=f"no progress for {stalled_for:.2f}s: a handler blocks its event loop",
             replaced_by=fresh.name)  # fmt: skip
        for host in members:
            self.rehome(host, stalled)

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
