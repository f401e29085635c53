"""launch_host: start the host of one agent incarnation, of the kind its ChildSpec asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._host import ThreadHost
from ._task_host import TaskHost
from ._task_loops import task_batch

if TYPE_CHECKING:
    from ..delivery._slot import AgentSlot
    from ._host_core import HostCore

__all__ = ["launch_host", "starts_in_order", "stops_in_order", "task_batch"]


def launch_host(slot: AgentSlot, gen: int, near: HostCore | None = None) -> HostCore:
    """A task on a shared event loop for isolation="task" (the loop of `near`, a sibling's
    task host, when it is live); else a thread of its own (whose runner puts the agent in
    this process, a worker process or a Ray actor)."""
    if slot.spec.isolation == "task":
        return TaskHost.launch(slot, gen, near.loop if isinstance(near, TaskHost) else None)
    return ThreadHost.launch(slot, gen)


def starts_in_order(host: HostCore) -> bool:
    """Does a start posted after this host's run after its start has ended? (Task hosts of
    one loop: its calls run in order.) Then a supervisor may start the next sibling at
    once instead of after this one's Started report."""
    return isinstance(host, TaskHost)


def stops_in_order(first: HostCore | None, then: HostCore | None) -> bool:
    """Does a stop request to `then`, posted after one to `first`, run after it? (Task hosts
    of one loop.) Then a supervisor stops them in one step, not one after the other's
    Stopped report."""
    return isinstance(first, TaskHost) and isinstance(then, TaskHost) and first.loop is then.loop
