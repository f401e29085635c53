"""TreeChanges: children added and removed while the tree runs (start_child / stop_child,
blocking or awaited).

A request is checked here (the supervisor exists and runs, the spec's id is free), then handed
to the supervisor's actor as a StartChild / StopChild message carrying a future; the actor
settles the future once the child has started (or failed to), or is gone. The caller waits on
that future: a blocking wait, or, from an event loop, an await that never blocks the loop and
needs no thread (the future's callback wakes the loop)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

import pykka

from .._exceptions import NotAChildError, SupervisorUnavailableError, UnknownPathError
from .._spec import ChildSpec, Supervisor
from ..delivery._messages import StartChild, StopChild
from ..supervision._states import NodeState
from ._loop_bridge import answered
from ._options import seconds

if TYPE_CHECKING:
    from ..supervision._node import SupervisorNode
    from ..supervision._tree import TreeIndex
    from ._asking import Asking

__all__ = ["TreeChanges"]

_T = TypeVar("_T")


class TreeChanges:
    """The dynamic-children requests of one system (`asking` says whether it runs)."""

    def __init__(self, tree: TreeIndex, asking: Asking) -> None:
        self._tree = tree
        self._asking = asking

    def start_child(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        return _outcome(*self._send_start(supervisor, spec, timeout))

    async def start_child_async(
        self, supervisor: str, spec: ChildSpec | Supervisor, *, timeout: float = 30.0
    ) -> str:
        return await _outcome_async(*self._send_start(supervisor, spec, timeout))

    def stop_child(self, path: str, *, timeout: float = 30.0) -> None:
        _outcome(*self._send_stop(path, timeout))

    async def stop_child_async(self, path: str, *, timeout: float = 30.0) -> None:
        await _outcome_async(*self._send_stop(path, timeout))

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

    def _send_stop(self, path: str, timeout: float) -> tuple[Future[None], float, str]:
        wait = seconds("timeout", timeout)
        self._asking.require_running()
        child = self._tree.node(path)
        parent = child.parent
        if parent is None or parent is self._tree.guardian:
            raise NotAChildError(path)
        future: Future[None] = Future()
        self._deliver(parent, StopChild(child, future))
        return future, wait, f"stop {path}"

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


def _outcome(future: Future[_T], timeout: float, what: str) -> _T:
    """The request's outcome, waited for at most `timeout` seconds."""
    try:
        return future.result(timeout)
    except TimeoutError as exc:
        raise _unanswered(what, timeout) from exc


async def _outcome_async(future: Future[_T], timeout: float, what: str) -> _T:
    """_outcome awaited from an event loop (the future itself is never cancelled)."""
    try:
        done = await answered(future.add_done_callback, timeout)
    except TimeoutError as exc:
        raise _unanswered(what, timeout) from exc
    return done.result()


def _unanswered(what: str, timeout: float) -> SupervisorUnavailableError:
    return SupervisorUnavailableError(f"could not {what} within {timeout}s")
