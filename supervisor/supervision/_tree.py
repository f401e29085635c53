"""TreeIndex: the per-system index of paths to slots and supervisor nodes (never pykka's
process-global registry), and the fallback guardian that supervises every fallback actor."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from strategies import Backoff, OneForOne

from .._exceptions import DuplicateChildError, UnknownPathError
from .._spec import ChildSpec, Supervisor
from ..delivery._durable import requeue_pending
from ..delivery._messages import Adopt, StopChild
from ..delivery._runtime import Runtime
from ..delivery._slot import AgentSlot
from ._node import SupervisorNode

__all__ = ["TreeIndex"]

# Fallbacks are supervised apart from the primaries: their crashes never count toward a
# primary's budget, and they keep answering when a primary's supervisor (or the root) gives
# up. A crash-looping fallback is restarted with backoff rather than given up on.
GUARDIAN_SPEC = Supervisor(
    "fallbacks",
    strategy=OneForOne(
        max_restarts=1000,
        within_seconds=1.0,
        backoff=Backoff(min_backoff=0.01, max_backoff=2.0, random_factor=0.2, reset_after=10.0),
    ),
)


class TreeIndex:
    def __init__(self, spec: Supervisor, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lock = threading.Lock()
        self.slots: dict[str, AgentSlot] = {}
        self.supervisors: dict[str, SupervisorNode] = {}
        self.guardian = SupervisorNode(path=f"{spec.id}#fallbacks", spec=GUARDIAN_SPEC, parent=None)
        self.root = self._build(spec, None)

    def _build(self, spec: Supervisor, parent: SupervisorNode | None) -> SupervisorNode:
        path = f"{parent.path}/{spec.id}" if parent else spec.id
        node = SupervisorNode(path=path, spec=spec, parent=parent)
        self.supervisors[path] = node
        for child in spec.children:
            node.children.append(self._build_child(child, node))
        return node

    def _build_child(
        self, spec: ChildSpec | Supervisor, parent: SupervisorNode
    ) -> AgentSlot | SupervisorNode:
        if isinstance(spec, Supervisor):
            return self._build(spec, parent)
        slot = AgentSlot(f"{parent.path}/{spec.id}", spec, self.runtime, parent)
        requeue_pending(slot)  # a durable mailbox: what the store still holds comes first
        fallbacks = []
        for fb in spec.fallback:
            fslot = AgentSlot(
                f"{slot.path}#{fb.id}", fb, self.runtime, self.guardian, kind="fallback"
            )
            self.slots[fslot.path] = fslot
            self.guardian.children.append(fslot)
            fallbacks.append(fslot)
        slot.fallbacks = tuple(fallbacks)
        self.slots[slot.path] = slot
        return slot

    # -- lookups ---------------------------------------------------------------------------

    def slot(self, path: str) -> AgentSlot:
        slot = self.slots.get(path)
        if slot is None:
            if path in self.supervisors:
                raise UnknownPathError(
                    path, detail=f"{path} is a supervisor; ask one of its agents"
                )
            raise UnknownPathError(path, list(self.slots))
        return slot

    def supervisor(self, path: str) -> SupervisorNode:
        node = self.supervisors.get(path)
        if node is None:
            if path in self.slots:
                detail = f"{path} is an agent, not a supervisor: children go under a supervisor"
                raise UnknownPathError(path, detail=detail)
            raise UnknownPathError(path, list(self.supervisors))
        return node

    def node(self, path: str) -> AgentSlot | SupervisorNode:
        return self.slots.get(path) or self.supervisor(path)

    def agents_under(self, node: SupervisorNode) -> list[AgentSlot]:
        out: list[AgentSlot] = []
        for child in node.children:
            if isinstance(child, AgentSlot):
                out.append(child)
            else:
                out.extend(self.agents_under(child))
        return out

    # -- dynamic children (called on the owning supervisor's thread) ------------------------

    def check_new_child(self, parent: SupervisorNode, spec: ChildSpec | Supervisor) -> None:
        path = f"{parent.path}/{spec.id}"  # a child's path is unique: a dict lookup, not a scan
        if path in self.slots or path in self.supervisors:
            raise DuplicateChildError(parent.path, spec.id)

    def add_child(
        self, parent: SupervisorNode, spec: ChildSpec | Supervisor
    ) -> AgentSlot | SupervisorNode:
        with self.lock:
            self.check_new_child(parent, spec)
            before = len(self.guardian.children)
            node = self._build_child(spec, parent)
            node.dynamic = True
            parent.children.append(node)
            adopted = tuple(self.guardian.children[before:])
        if adopted:
            self.guardian.post(Adopt(adopted))
        return node

    def remove_child(self, parent: SupervisorNode, node: AgentSlot | SupervisorNode) -> None:
        with self.lock:
            if node in parent.children:
                parent.children.remove(node)
            agents = [node] if isinstance(node, AgentSlot) else self.agents_under(node)
            for slot in agents:
                self.slots.pop(slot.path, None)
                for fb in slot.fallbacks:
                    self.slots.pop(fb.path, None)
                    if fb in self.guardian.children:
                        self.guardian.children.remove(fb)
            if isinstance(node, SupervisorNode):
                for path in [
                    p for p in self.supervisors if p == node.path or p.startswith(node.path + "/")
                ]:
                    del self.supervisors[path]
        for slot in agents:
            for fb in slot.fallbacks:
                self.guardian.post(StopChild(fb, Future()))
