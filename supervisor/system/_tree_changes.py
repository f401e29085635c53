"""TreeChanges: children added and removed while the tree runs (start_child / stop_child,
blocking or awaited).

A request is checked here (the supervisor exists and runs, the spec's id is free), then handed
to the supervisor's actor as a StartChild / StopChild message carrying a future; the actor
settles the future once the child has started (or failed to), or is gone. The caller waits on
that future: a blocking wait, or, from an event loop, an await that never blocks the loop and
needs no thread (the future's callback wakes the loop)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

import pykka

from .._exceptions import NotAChildError, SupervisorUnavailableError, UnknownPathError
from .._spec import ChildSpec, Supervisor
from ..delivery._messages import StartChild, StopChild
from ..supervision._states import NodeState
from ._options import seconds

if TYPE_CHECKING:
    from ..supervision._node import SupervisorNode
    from ..supervision._tree import TreeIndex
    from ._asking import Asking

__all__ = ["TreeChanges", "settled"]

_T = TypeVar("_T")


class TreeChanges:
    """The dynamic-children requests of one system (`asking` says whether it runs)."""

    def __init__(self, tree: TreeIndex, asking: Asking) -> None:
        self._tree = tree
        self._asking = asking

    def start_child(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        future, wait, what = self._send_start(supervisor, spec, timeout)
        try:
            return future.result(wait)
        except TimeoutError as exc:
            raise _unanswered(what, wait) from exc

    async def start_child_async(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        future, wait, what = self._send_start(supervisor, spec, timeout)
        try:
            return await settled(future, wait)
        except TimeoutError as exc:
            raise _unanswered(what, wait) from exc

    def stop_child(self, path: str, *, timeout: float = 30.0) -> None:
        future, wait = self._send_stop(path, timeout)
        try:
            future.result(wait)
        except TimeoutError as exc:
            raise _unanswered(f"stop {path}", wait) from exc

    async def stop_child_async(self, path: str, *, timeout: float = 30.0) -> None:
        future, wait = self._send_stop(path, timeout)
        try:
            await settled(future, wait)
        except TimeoutError as exc:
            raise _unanswered(f"stop {path}", wait) from exc

    def _send_start(
        self, supervisor: str, spec: ChildSpec | Supervisor, timeout: float
    ) -> tuple[Future[str], float, str]:
        wait = seconds("timeout", timeout)
        self._asking.require_running()
        node = self._tree.supervisor(supervisor)
        if not isinstance(spec, (ChildSpec, Supervisor)):
            msg = f"start_child takes a ChildSpec or Supervisor, got {type(spec).__name__}"
            raise TypeError(msg)
        self._tree.check_new_child(node, spec)
        future: Future[str] = Future()
        self._deliver(node, StartChild(spec, future))
        return future, wait, f"start {spec.id} under {supervisor}"

    def _send_stop(self, path: str, timeout: float) -> tuple[Future[None], float]:
        wait = seconds("timeout", timeout)
        self._asking.require_running()
        child = self._tree.node(path)
        parent = child.parent
        if parent is None or parent is self._tree.guardian:
            raise NotAChildError(path)
        future: Future[None] = Future()
        self._deliver(parent, StopChild(child, future))
        return future, wait

    def _deliver(self, node: SupervisorNode, message: StartChild | StopChild) -> None:
        """Hand a request to a supervisor's live incarnation, or fail at once."""
        if self._tree.supervisors.get(node.path) is not node:  # removed meanwhile
            raise UnknownPathError(node.path, detail=f"{node.path} was removed")
        actor = node.actor
        state = node.state
        if actor is not None and state in (NodeState.STARTING, NodeState.RUNNING):
            try:
                actor.actor_ref.tell(message)
            except pykka.ActorDeadError:
                state = NodeState.STOPPED
            else:
                return
        msg = f"supervisor {node.path} is {state}; it cannot take {type(message).__name__}"
        raise SupervisorUnavailableError(msg)


def _unanswered(what: str, timeout: float) -> SupervisorUnavailableError:
    return SupervisorUnavailableError(f"could not {what} within {timeout}s")


async def settled(future: Future[_T], timeout: float) -> _T:
    """Await a concurrent future from an event loop, at most `timeout` seconds (TimeoutError
    past it). The future is never cancelled, by the timeout or by the awaiting task being
    cancelled: its owner settles it whatever the caller does. Its outcome reaches the loop
    through call_soon_threadsafe, dropped if the loop has closed meanwhile."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[_T] = loop.create_future()

    def copy(done: Future[_T]) -> None:
        if waiter.done():
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    def wake(done: Future[_T]) -> None:
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(copy, done)
            except RuntimeError:  # closed between the check and the call
                return

    future.add_done_callback(wake)
    return await asyncio.wait_for(asyncio.shield(waiter), timeout)
