"""Health snapshot: pydantic models built from state the runtime already keeps (no asks)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from ..delivery._slot import AgentSlot
from ..delivery._stats import percentile

if TYPE_CHECKING:
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


def clean_text(text: str) -> str:
    """Text that always encodes as UTF-8: lone surrogates (valid in JSON, so they can arrive in
    any request and end up in an error message) become backslash escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


# every string an agent can influence goes through clean_text: health must always serialise
SafeText = Annotated[str, AfterValidator(clean_text)]


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


class RateLimitHealth(BaseModel):
    """tokens: left in the bucket now (shared with every agent on the same RateLimit);
    waiting: messages queued for a token."""

    model_config = ConfigDict(frozen=True)

    per_second: float
    burst: int
    tokens: float
    waiting: int


class ActorHealth(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: SafeText
    kind: str  # agent | supervisor | fallback
    state: str
    supervisor: SafeText | None = None
    restarts: int = 0
    last_error: SafeText | None = None
    started_at: datetime | None = None
    # agents and fallbacks
    mailbox_depth: int = 0
    mailbox_limit: int | None = None
    busy: bool = False
    processed: int = 0
    failures: dict[SafeText, int] = {}
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    last_heartbeat: datetime | None = None
    abandoned: int = 0  # abandoned threads still running
    abandoned_total: int = 0
    fallback_answers: int = 0
    dead_letters: int = 0
    breaker: BreakerHealth | None = None
    rate_limit: RateLimitHealth | None = None
    # set while the agent is kept down because too many of its hung handlers still run
    alarm: SafeText | None = None
    isolation: str | None = None  # thread | process (agents and fallbacks)
    pid: int | None = None  # the worker process of a process agent
    rss_mb: float | None = None  # its resident memory
    kills: dict[str, int] = {}  # workers killed, by reason: deadline, memory, died, shutdown
    node_id: str | None = None  # the Ray node of a Ray agent
    actor_id: str | None = None  # and its Ray actor
    fallbacks: list[SafeText] = []
    degraded: bool = False  # a fallback answers in this agent's place right now
    # an LLMAgent's explicit AgentState (processing, awaiting_tool, ...); None for any other agent
    # (whatever else an agent keeps in an attribute named `state` is never reported)
    agent_state: str | None = None
    # supervisors
    children: list[SafeText] = []
    strategy: str | None = None
    budget_used: int = 0
    max_restarts: int | None = None
    within_seconds: float | None = None
    escalations: int = 0


class TreeHealth(BaseModel):
    """state: starting | running | degraded (some agent answered by its fallback or down) |
    failed (the root gave up) | stopping | stopped. healthy: running with nothing degraded."""

    model_config = ConfigDict(frozen=True)

    root: SafeText
    state: str
    healthy: bool
    actors: dict[SafeText, ActorHealth]
    dead_letters: dict[SafeText, int]
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
    runner = host.runner if host is not None else None
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
        rate_limit=_rate_limit(slot),
        alarm=slot.held_because,
        fallbacks=[f.path for f in slot.fallbacks],
        degraded=degraded,
        agent_state=runner.agent_state() if runner is not None else None,
        isolation=slot.spec.isolation,
        pid=runner.pid if runner is not None else None,
        rss_mb=runner.rss_mb() if runner is not None else None,
        kills=dict(stats.kills),
        node_id=runner.node_id if runner is not None else None,
        actor_id=runner.actor_id if runner is not None else None,
    )


def _rate_limit(slot: AgentSlot) -> RateLimitHealth | None:
    found = slot.rate_health()
    if found is None or slot.limiter is None:
        return None
    tokens, waiting = found
    limit = slot.limiter.limit
    return RateLimitHealth(
        per_second=limit.per_second, burst=limit.capacity, tokens=tokens, waiting=waiting
    )


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
        try:
            actors[slot.path] = _agent(slot, tree, now_mono, now_wall)
        except Exception as exc:  # noqa: BLE001 - health never raises because of an agent
            actors[slot.path] = _unreadable(slot, exc)
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
