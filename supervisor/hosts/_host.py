"""ThreadHost: the pykka actor that runs one instance of an agent on its own thread.

What a host is and does is HostCore's (_host_core.py); this is how a thread carries it:
pykka's inbox brings wake-ups and the stop request (the slot owns the mailbox), and the
handler runs on the thread itself (an `async def handle` on the thread's own event loop).
Nothing the agent raises escapes into pykka, so pykka never runs ActorRegistry.stop_all().
A handler past its deadline cannot be killed: its thread is abandoned and finishes in the
background.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import pykka

from ..delivery._messages import Stopped
from ._host_core import HostCore
from ._outcome import RemoteCrash, describe
from ._runner import make_runner

if TYPE_CHECKING:
    from ..delivery._envelope import Envelope
    from ..delivery._slot import AgentSlot
    from ._async import HostLoop

__all__ = ["ThreadHost", "describe"]

_WAKE = "hivekeeper.wake"
_DIED = "hivekeeper.worker_died"


class ThreadHost(HostCore, pykka.ThreadingActor):
    use_daemon_thread = True  # an abandoned handler must not keep the process alive

    def __init__(self, slot: AgentSlot, gen: int) -> None:
        pykka.ThreadingActor.__init__(self)
        HostCore.__init__(self, slot, gen)
        self.runner = make_runner(self)
        self.running_async: HostLoop | None = None  # set while an async handler runs

    @classmethod
    def launch(cls, slot: AgentSlot, gen: int) -> ThreadHost:
        """Start a host thread. Hosts are kept out of pykka's process-global ActorRegistry (a
        list with O(n) unregister): the system keeps its own per-tree index, and no
        ActorRegistry.stop_all() elsewhere in the process can take the tree down."""
        host = cls(slot, gen)
        host._enrol()
        host._start_actor_loop()
        return host

    # -- called from other threads ---------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(_WAKE)

    def request_stop(self) -> None:
        with self.slot.lock:
            self.stopping = True
        try:
            self.actor_ref.tell(pykka.messages._ActorStop())
        except pykka.ActorDeadError:
            self._report(Stopped(self.slot, self.gen))

    def worker_died(self, error: str) -> None:
        """Handled on this host's own thread (while a message runs, the runner sees it first)."""
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell((_DIED, error))

    def attach_async(self, loop: HostLoop | None) -> None:
        """Record (or clear) that an async handler runs on this host's loop. The watchdog may
        have found the handler overdue before this ran: then cancel it here. Both sides hold
        the slot lock, so one of them sees the other."""
        with self.slot.lock:
            self.running_async = loop
            overdue = self.hung
        if loop is not None and overdue:
            loop.cancel()

    # -- pykka hooks (the host's own thread) ------------------------------------------------

    def on_start(self) -> None:
        self.thread = threading.current_thread()
        if not self._start_agent():
            self.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == _DIED:
            self._crash(self.current, RemoteCrash(message[1]))
            return None
        if message == _WAKE:
            try:
                self._drain()
            except BaseException as exc:  # noqa: BLE001 - a bug outside the handler (answering, a
                # callback, stats) must not stop this thread while the slot still routes to it
                self._crash(self.current, exc)
        return None

    def on_stop(self) -> None:
        self._stop_orderly()

    # -- the message loop -------------------------------------------------------------------

    def _drain(self) -> None:
        slot = self.slot
        while True:
            env, arm_at = slot.take(self)
            if env is None:
                return
            if arm_at is not None:
                self._arm(arm_at)
            if not self._handle(env):
                return
            if self.stop_requested:
                self._exit_normally()
                self.stop()
                return

    def _handle(self, env: Envelope) -> bool:
        """Run one message (already made current by slot.take); False when this host must
        take no more messages."""
        entered = self._enter(env)
        tracing = self.slot.runtime.tracing
        try:
            if self.slot.durability is not None:
                self._begin_durable(env)
            if tracing is None:
                outcome = self.runner.call(env)
            else:
                with tracing.span(env, self.slot.path):
                    outcome = self.runner.call(env)
        except BaseException as exc:  # noqa: BLE001 - let it crash, but only this actor
            return self._leave(env, entered, crash=exc)
        return self._leave(env, entered, outcome)

    def _end_crashed(self) -> None:
        """End the thread as soon as the current pykka message returns, without a stop
        message: keeps the teardown off the supervisor's critical path."""
        super()._end_crashed()
        self.actor_stopped.set()
