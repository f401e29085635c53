"""Health snapshot: one entry per actor, built from state the runtime already keeps (nothing
asks an agent anything), never raising because of an agent. The models are in
_health_models.py; how an agent's entry is read, cheaply, in _health_reading.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ._health_models import (
    ActorHealth,
    BreakerHealth,
    RateLimitHealth,
    StoreHealth,
    TreeHealth,
    clean_text,
)
from ._health_reading import SnapshotPass, text, trusted, wall
from ._health_reading import agent_entry as _agent  # one agent's entry (tests replace it)

if TYPE_CHECKING:
    from ..delivery._slot import AgentSlot
    from ..supervision._node import SupervisorNode
    from ..supervision._tree import TreeIndex

__all__ = [
    "ActorHealth",
    "BreakerHealth",
    "RateLimitHealth",
    "TreeHealth",
    "clean_text",
    "snapshot",
]


# every field's default (a supervisor's entry gives its own values over them)
_DEFAULTS = {name: field.default for name, field in ActorHealth.model_fields.items()}


def _unreadable(slot: AgentSlot, exc: Exception) -> ActorHealth:
    """The entry of an agent whose snapshot could not be built: what the runtime itself knows."""
    try:
        state = slot.state.value
    except Exception:  # noqa: BLE001
        state = "unknown"
    return ActorHealth(
        path=slot.path,
        kind=slot.kind,
        state=state,
        supervisor=slot.parent.path,
        last_error=f"health snapshot failed: {type(exc).__name__}",
    )


def _paths(children: list[AgentSlot | SupervisorNode]) -> list[str]:
    paths = [c.path for c in children]
    if "".join(paths).isascii():  # ids are ASCII (_spec._ID): one check for thousands
        return paths
    return [clean_text(p) for p in paths]


def _supervisor(node: SupervisorNode) -> ActorHealth:
    actor = node.actor
    strategy = node.spec.strategy
    return trusted(
        ActorHealth,
        {
            **_DEFAULTS,
            "path": clean_text(node.path),
            "kind": "supervisor",
            "state": str(node.state),
            "supervisor": clean_text(node.parent.path) if node.parent else None,
            "restarts": node.restarts,
            "last_error": text(node.last_error),
            "started_at": wall(node.started_at),
            "children": _paths(node.children),
            "strategy": strategy.name,
            "budget_used": actor.restarts_in_window() if actor is not None else 0,
            "max_restarts": strategy.max_restarts,
            "within_seconds": strategy.within_seconds,
            "escalations": node.escalations,
            # fresh containers: no two entries share one
            "failures": {},
            "kills": {},
            "fallbacks": [],
        },
    )


def snapshot(tree: TreeIndex, system_state: str) -> TreeHealth:
    at = SnapshotPass(tree)
    actors: dict[str, ActorHealth] = {}
    degraded = False
    for node in [*tree.supervisors.values(), tree.guardian]:
        entry = _supervisor(node)
        actors[entry.path] = entry
        degraded = degraded or entry.state == "down"
    for slot in list(tree.slots.values()):
        try:
            entry = _agent(slot, at)
        except Exception as exc:  # noqa: BLE001 - health never raises because of an agent
            entry = _unreadable(slot, exc)
        actors[entry.path] = entry
        degraded = degraded or entry.degraded or entry.state in ("down", "backoff")
    at.finish()
    state = str(system_state)
    if state == "running" and degraded:
        state = "degraded"
    letters = tree.runtime.dead_letters.counts()
    return trusted(
        TreeHealth,
        {
            "root": clean_text(tree.root.path),
            "state": state,
            "healthy": state == "running",
            "actors": actors,
            "dead_letters": {clean_text(reason): n for reason, n in letters.items()},
            "taken_at": datetime.now(tz=UTC),
            "store": _store(tree, at),
        },
    )


def _store(tree: TreeIndex, at: SnapshotPass) -> StoreHealth | None:
    store = tree.runtime.store
    if store is None:
        return None
    s = store.stats()
    pending = sum(at.pending_counts().values())  # read once for the agents' entries too
    try:
        letters = store.dead_letter_count()
    except Exception:  # noqa: BLE001 - a closed store: what it counted still shows
        letters = 0
    return trusted(
        StoreHealth,
        {
            "path": clean_text(s.path),
            "synchronous": s.synchronous,
            "commits": s.commits,
            "writes": s.operations,
            "commit_p50_ms": s.commit_p50_ms,
            "commit_p99_ms": s.commit_p99_ms,
            "pending": pending,
            "dead_letters": letters,
        },
    )
