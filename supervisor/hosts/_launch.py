"""launch_host: start the host of one agent incarnation, of the kind its ChildSpec asks for;
and what a supervisor may ask of a host kind to start and stop many children per step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._host import ThreadHost
from ._task_host import TaskHost
from ._task_loop import TaskLoop, task_batch

if TYPE_CHECKING:
    from ..delivery._slot import AgentSlot
    from ._host_core import HostCore

__all__ = ["launch_host", "loop_of", "start_due", "starts_in_order", "stops_in_order", "task_batch"]


def launch_host(slot: AgentSlot, gen: int, near: TaskLoop | None = None) -> HostCore:
    """A task on a shared event loop for isolation="task" (on `near`, its declared
    siblings' loop, while that is live); else a thread of its own (whose runner puts the
    agent in this process, a worker process or a Ray actor)."""
    if slot.spec.isolation == "task":
        return TaskHost.launch(slot, gen, near)
    return ThreadHost.launch(slot, gen)


def loop_of(host: HostCore | None) -> TaskLoop | None:
    return host.loop if isinstance(host, TaskHost) else None


def starts_in_order(host: HostCore, near: TaskLoop | None) -> bool:
    """Does a start posted after this host's run after its start has ended? (A task host
    on `near`, the loop of the sibling started before it, or the first: one loop runs its
    calls in order.) Then a supervisor may start the next sibling at once instead of after
    this one's Started report."""
    return isinstance(host, TaskHost) and (near is None or host.loop is near)


def stops_in_order(first: HostCore | None, then: HostCore | None) -> bool:
    """Does a stop request to `then`, posted after one to `first`, run after it? (Task hosts
    of one loop, neither in the middle of a message: a busy host stops when its message
    ends.) Then a supervisor stops them in one step, not one after the other's report."""
    return (
        isinstance(first, TaskHost)
        and isinstance(then, TaskHost)
        and first.loop is then.loop
        and not first.busy
        and not then.busy
    )


def start_due(host: HostCore | None, timeout: float, now: float) -> float | None:
    """When the start of `host` is up (a task host's counts from when it began on its loop);
    None when it is up now."""
    if isinstance(host, TaskHost):
        return host.start_due(timeout, now)
    return None
