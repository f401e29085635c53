"""The health snapshot's data model: what health() returns, /health and /tree serve and the CLI
shows. Every string an agent can influence is SafeText, so a snapshot always serialises."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = [
    "ActorHealth",
    "BreakerHealth",
    "RateLimitHealth",
    "SafeText",
    "StoreHealth",
    "TreeHealth",
    "clean_text",
]


def clean_text(text: str) -> str:
    """Text that always encodes as UTF-8: lone surrogates (valid in JSON, so they can arrive in
    any request and end up in an error message) become backslash escapes."""
    if text.isascii():  # the common case, and much cheaper than encoding
        return text
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
    isolation: str | None = None  # thread | task | process | ray (agents and fallbacks)
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
    # durability (ChildSpec(durable=True) / persist=True, in the system's store)
    durable: bool = False
    persist: bool = False
    pending_durable: int | None = None  # committed to the store and not yet handled
    redelivered: int = 0  # messages recovered from the store that had been delivered before
    duplicates: int = 0  # sends recognised by their idempotency key (not queued again)
    last_snapshot_at: datetime | None = None  # its state last handed to the store
    state_error: SafeText | None = None  # the last snapshot that could not be restored or saved
    # supervisors
    children: list[SafeText] = []
    strategy: str | None = None
    budget_used: int = 0
    max_restarts: int | None = None
    within_seconds: float | None = None
    escalations: int = 0


class StoreHealth(BaseModel):
    """The system's store: its file, how it syncs, its commits (group commit: one for many
    writes) and their latency over the recent ones, and the messages pending in it."""

    model_config = ConfigDict(frozen=True)

    path: SafeText
    synchronous: str
    commits: int
    writes: int
    commit_p50_ms: float
    commit_p99_ms: float
    pending: int
    dead_letters: int


class TreeHealth(BaseModel):
    """state: starting | running | degraded (some agent answered by its fallback or down) |
    failed (the root gave up) | stopping | stopped. healthy: running with nothing degraded.
    An agent's entry is shared by the snapshots taken while nothing about it changes: like
    every model here it is frozen; treat its dicts and lists as read-only too."""

    model_config = ConfigDict(frozen=True)

    root: SafeText
    state: str
    healthy: bool
    actors: dict[SafeText, ActorHealth]
    dead_letters: dict[SafeText, int]
    taken_at: datetime
    store: StoreHealth | None = None  # where durable agents keep state and mailboxes

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
