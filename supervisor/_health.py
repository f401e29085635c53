"""Health snapshot: pydantic models built from state the runtime already keeps (no asks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from ._slot import AgentSlot
from ._stats import percentile

if TYPE_CHECKING:
    from ._node import SupervisorNode
    from ._tree import TreeIndex

__all__ = ["ActorHealth", "BreakerHealth", "TreeHealth", "snapshot"]


class BreakerHealth(BaseModel):
    """state: closed | open | half_open; failures: consecutive failures now; opened_at: when it
    last opened (wall clock, derived from the monotonic clock); reopens_in: seconds until the
    next trial may pass (open only)."""

    model_config = ConfigDict(frozen=True)

    state: str
    failures: int
    fail_max: int
    failures_total: int
    opens_total: int
    opened_at: datetime | None = None
    reopens_in: float | None = None


class ActorHealth(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    kind: str  # agent | supervisor | fallback
    state: str
    supervisor: str | None = None
    restarts: int = 0
    last_error: str | None = None
    started_at: datetime | None = None
    # agents and fallbacks
    mailbox_depth: int = 0
    mailbox_limit: int | None = None
    busy: bool = False
    processed: int = 0
    failures: dict[str, int] = {}
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    last_heartbeat: datetime | None = None
    abandoned: int = 0  # abandoned threads still running
    abandoned_total: int = 0
    fallback_answers: int = 0
    dead_letters: int = 0
    breaker: BreakerHealth | None = None
    fallbacks: list[str] = []
    degraded: bool = False  # a fallback answers in this agent's place right now
    agent_state: str | None = None  # an LLMAgent's explicit state (processing, awaiting_tool, ...)
    # supervisors
    children: list[str] = []
    strategy: str | None = None
    budget_used: int = 0
    max_restarts: int | None = None
    within_seconds: float | None = None
    escalations: int = 0


class TreeHealth(BaseModel):
    """state: starting | running | degraded (some agent answered by its fallback or down) |
    failed (the root gave up) | stopping | stopped. healthy: running with nothing degraded."""

    model_config = ConfigDict(frozen=True)

    root: str
    state: str
    healthy: bool
    actors: dict[str, ActorHealth]
    dead_letters: dict[str, int]
    taken_at: datetime

    def tree(self) -> dict[str, Any]:
        """The same snapshot as nested dicts: each node with its `children` inlined."""

        def build(path: str) -> dict[str, Any]:
            actor = self.actors[path]
            node: dict[str, Any] = actor.model_dump(mode="json", exclude={"children"})
            node["children"] = [build(c) for c in actor.children if c in self.actors]
            node["fallbacks"] = [
                self.actors[f].model_dump(mode="json") for f in actor.fallbacks if f in self.actors
            ]
            return node

        return {
            "root": self.root,
            "state": self.state,
            "healthy": self.healthy,
            "tree": build(self.root),
            "dead_letters": self.dead_letters,
        }


def _wall(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts is not None else None


def _agent(slot: AgentSlot, tree: TreeIndex, now_mono: float, now_wall: float) -> ActorHealth:
    stats = slot.stats
    lat = list(stats.latencies)
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    breaker = None
    if slot.breaker is not None:
        b = slot.breaker
        opened = b.opened_at
        breaker = BreakerHealth(
            state=b.state.value,
            failures=b.failures,
            fail_max=b.policy.fail_max,
            failures_total=b.failures_total,
            opens_total=b.opens_total,
            opened_at=_wall(now_wall - (now_mono - opened)) if opened is not None else None,
            reopens_in=b.reopens_in(now_mono),
        )
    host = slot.host
    agent = host.agent if host is not None else None
    agent_state = getattr(agent, "state", None)
    degraded = bool(slot.fallbacks) and (
        slot.state.value in ("backoff", "down", "failed", "stopped")
        or (breaker is not None and breaker.state != "closed")
    )
    return ActorHealth(
        path=slot.path,
        kind=slot.kind,
        state=slot.state.value,
        supervisor=slot.parent.path,
        restarts=stats.restarts,
        last_error=stats.last_error,
        started_at=_wall(stats.started_at),
        mailbox_depth=len(slot.queue),
        mailbox_limit=slot.spec.mailbox_size,
        busy=host is not None and host.current is not None,
        processed=stats.processed,
        failures=dict(stats.failures),
        latency_p50_ms=p50 * 1000 if p50 is not None else None,
        latency_p99_ms=p99 * 1000 if p99 is not None else None,
        last_heartbeat=_wall(stats.last_heartbeat),
        abandoned=stats.abandoned_running,
        abandoned_total=stats.abandoned_total,
        fallback_answers=stats.fallback_answers,
        dead_letters=tree.runtime.dead_letters.count_for(slot.path),
        breaker=breaker,
        fallbacks=[f.path for f in slot.fallbacks],
        degraded=degraded,
        agent_state=str(agent_state) if agent_state is not None else None,
    )


def _supervisor(node: SupervisorNode) -> ActorHealth:
    actor = node.actor
    used = actor.restarts_in_window() if actor is not None else 0
    return ActorHealth(
        path=node.path,
        kind="supervisor",
        state=node.state,
        supervisor=node.parent.path if node.parent else None,
        restarts=node.restarts,
        last_error=node.last_error,
        started_at=_wall(node.started_at),
        children=[c.path for c in node.children],
        strategy=node.spec.strategy.name,
        budget_used=used,
        max_restarts=node.spec.strategy.max_restarts,
        within_seconds=node.spec.strategy.within_seconds,
        escalations=node.escalations,
    )


def snapshot(tree: TreeIndex, system_state: str) -> TreeHealth:
    now_mono = tree.runtime.clock.now()
    now_wall = time.time()
    actors: dict[str, ActorHealth] = {}
    for node in [*list(tree.supervisors.values()), tree.guardian]:
        actors[node.path] = _supervisor(node)
    for slot in list(tree.slots.values()):
        actors[slot.path] = _agent(slot, tree, now_mono, now_wall)
    degraded = any(a.degraded or a.state in ("down", "backoff") for a in actors.values())
    state = system_state
    if state == "running" and degraded:
        state = "degraded"
    return TreeHealth(
        root=tree.root.path,
        state=state,
        healthy=state == "running",
        actors=actors,
        dead_letters=tree.runtime.dead_letters.counts(),
        taken_at=datetime.now(tz=UTC),
    )
