"""TaskHost: one incarnation of an `isolation="task"` agent, carried by a task on one of its
system's shared event loops (_task_loops.py) instead of a thread of its own.

What a host is and does is HostCore's; this is how a loop carries it. Everything the host
does on its loop runs in `_on_loop` (its start, a drain of its mailbox, its orderly stop), and
`busy` (under the slot lock) makes those one at a time: a stop request that comes while a
drain runs is carried out when the drain ends. A handler past its deadline is cancelled. The
loop may change between two messages (after a stall, see _task_loops.py): every callback
checks it still runs on the host's loop. A host asked to stop before its start or a drain
began on the loop stops at once (no start, no drain), so a supervisor's stops, posted in
reverse declaration order, run in that order.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from typing import TYPE_CHECKING, Any

from actors import Agent
from strategies import ExitKind

from ..delivery._messages import Exited, Started, Stopped
from ._host_core import HostCore
from ._runner import LocalRunner
from ._task_loop import cancel_spawned, running_host
from ._task_loops import TaskLoop, loops_of

if TYPE_CHECKING:
    from ..delivery._envelope import Envelope
    from ..delivery._slot import AgentSlot

__all__ = ["TaskHost", "TaskRunner"]

_START, _WAKE, _STOP = "start", "wake", "stop"
_FAIR_SHARE = 16  # messages one agent handles before it lets its loop's other agents run


class TaskRunner(LocalRunner):
    """The agent is an object of this process whose handler is awaited on the host's loop."""

    isolation = "task"

    def __init__(self, host: TaskHost) -> None:
        super().__init__(host)
        self._task_host = host

    def check(self, agent: Agent) -> None:
        if not inspect.iscoroutinefunction(agent.handle):
            msg = (
                f"isolation='task' runs {type(agent).__name__}.handle on an event loop it "
                "shares with other agents: it must be `async def handle` (a blocking handler "
                "would stall them); use isolation='thread' for a sync one"
            )
            raise TypeError(msg)

    async def call(self, env: Envelope) -> Any:
        agent, message, refused = self.input_of(env)
        if refused is not None:
            return refused
        return await agent.handle(message)

    def cancel(self) -> None:
        self._task_host.cancel_drain()

    def close(self) -> None:
        self.agent = None


class TaskHost(HostCore):
    """Invariants (under the slot lock): `busy` while one of its callbacks or its drain task
    runs on its loop; `loop` changes only while it is not busy (move_to); `start_began` is
    when its start began on the loop (None before)."""

    runner: TaskRunner

    def __init__(self, slot: AgentSlot, gen: int, near: TaskLoop | None = None) -> None:
        super().__init__(slot, gen)
        self.runner = TaskRunner(self)
        self.loops = loops_of(slot.runtime)
        self.loop: TaskLoop = self.loops.place(self, near)
        self.busy = False
        self.drain_task: asyncio.Task[None] | None = None
        self.start_began: float | None = None
        self.spawned: weakref.WeakSet[asyncio.Task[Any]] | None = None  # made on first task

    @classmethod
    def launch(cls, slot: AgentSlot, gen: int, near: TaskLoop | None = None) -> TaskHost:
        """Start a task host, on the loop `near` if it is live (see TaskLoops.place)."""
        host = cls(slot, gen, near)
        host._enrol()
        host._post(_START)
        return host

    # -- called from any thread ------------------------------------------------------------

    def _post(self, what: str) -> None:
        loop = self.loop
        if not loop.call(self._on_loop, loop, what):  # its loop has ended: the system stops
            self._lost("its event loop has ended (the system is stopping)")

    def _lost(self, error: str) -> None:
        """Nothing can run this host any more: it takes no messages, and its supervisor is
        told (as a crash, or Stopped when it was asked to stop)."""
        with self.slot.lock:
            if self.finished:
                return
            self.crashed = True
            self.slot.lose_locked(self)
            stopping = self.stopping
        self._ending(Stopped(self.slot, self.gen) if stopping else None)
        if not stopping:
            self._report(Exited(self.slot, self.gen, ExitKind.CRASH, None, error))

    def wake(self) -> None:
        self._post(_WAKE)

    def request_stop(self) -> None:
        with self.slot.lock:
            self.stopping = True
        self._post(_STOP)

    def worker_died(self, error: str) -> None:
        """A task agent has no worker process."""

    def cancel_drain(self) -> None:
        """Cancel the running handler (the watchdog's thread): it ends at its next await."""
        task = self.drain_task
        if task is not None:
            self.loop.call(task.cancel)

    def move_to(self, loop: TaskLoop) -> bool:
        """Run on `loop` from now on, if no callback or message of this host runs now (its
        old loop stalled); a start, wake or stop posted to the old loop is posted again."""
        with self.slot.lock:
            if self.busy or self.finished:
                return False
            self.loop = loop
        self._post(_START if not self._started else _WAKE)
        return True

    @property
    def _started(self) -> bool:
        return self.runner.agent is not None or self.crashed

    def start_due(self, timeout: float, now: float) -> float | None:
        """When its start_timeout is up: counted from when its start began on the loop (a
        start queued behind its siblings' is not late yet); None if it is up now."""
        began = self.start_began
        if began is None:
            return now + timeout
        return began + timeout if now < began + timeout else None

    # -- on its loop ---------------------------------------------------------------------------

    def _on_loop(self, loop: TaskLoop, what: str) -> None:
        with self.slot.lock:
            if loop is not self.loop or self.busy or self.finished:
                return  # stale (it moved), or its drain carries out a stop at its end
            if what == _START and self._started:
                return
            self.busy = True
            stop_now = self.stopping  # asked to stop: no start, no drain (stops keep order)
        if stop_now:
            self._idle()
        elif what == _START:
            self.start_began = self.slot.runtime.clock.now()
            if self._start_agent():
                self._idle()
            elif self.crashed:
                self._ending(None)
            else:  # superseded before it took its slot: it only stops
                self._idle(superseded=True)
        elif what == _WAKE:
            self.drain_task = loop.loop.create_task(self._drain())
        else:
            self._idle()

    def _idle(self, superseded: bool = False) -> None:
        """Its callback or drain is over: carry out a stop request that came meanwhile; off
        a retired loop if it is on one."""
        with self.slot.lock:
            self.busy = False
            self.drain_task = None
            stop = (self.stopping or superseded) and not self.finished
            if stop:
                self.busy = True
            moving = not stop and not self.finished and self.loop.retired
        if stop:
            self._stop_orderly()
        elif moving:
            self.loops.rehome(self, self.loop)

    async def _drain(self) -> None:
        running_host.set(self)  # the tasks its handler creates are this incarnation's
        slot = self.slot
        loop = self.loop
        handled = 0
        try:
            while True:
                env, arm_at = slot.take(self)
                if env is None:
                    break
                if arm_at is not None:
                    self._arm(arm_at)
                if not await self._handle(env):
                    break
                loop.progress()
                if self.stop_requested:
                    self._exit_normally()
                    self._ending(None)
                    break
                handled += 1
                if handled % _FAIR_SHARE == 0:
                    await asyncio.sleep(0)
        except BaseException as exc:  # noqa: BLE001 - a bug outside the handler ends this agent only
            self._crash(self.current, exc)
        self._idle()

    async def _handle(self, env: Envelope) -> bool:
        entered = self._enter(env)
        tracing = self.slot.runtime.tracing
        try:
            if self.slot.durability is not None:
                self._begin_durable(env)
            if tracing is None:
                outcome = await self.runner.call(env)
            else:
                with tracing.span(env, self.slot.path):
                    outcome = await self.runner.call(env)
        except BaseException as exc:  # noqa: BLE001 - let it crash, but only this agent
            return self._leave(env, entered, crash=exc)
        return self._leave(env, entered, outcome)

    def _ending(self, report: Any) -> None:
        super()._ending(report)
        loop = self.loop
        if self.spawned is not None:  # what this incarnation left running ends with it
            loop.call(cancel_spawned, self.spawned)
        self.loops.leave(self, loop)

    def _report(self, message: Any) -> None:
        self.loop.report(self.slot.parent, message, isinstance(message, (Started, Stopped)))
