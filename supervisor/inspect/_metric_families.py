"""The metric families of a tree (listed in _metrics.py), read from one health snapshot and the
slots' histograms, in a fixed order. A family only some actors have (a breaker's, a bounded
mailbox's, a worker process's) is left out when none has it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..delivery._breaker import BreakerState
from ..delivery._slot import AgentSlot, SlotState
from ..delivery._stats import LATENCY_BUCKETS, LatencyHistogram
from ._exposition import (
    COUNTER,
    GAUGE,
    Family,
    Histograms,
    LabelledValues,
    PathValues,
    StateSets,
    per_path,
)
from ._health import ActorHealth, TreeHealth
from ._store_metrics import durability_families, store_families

if TYPE_CHECKING:
    from ..system._system import System

__all__ = [
    "actor_families",
    "histogram_buckets",
    "histogram_families",
    "tree_families",
    "tree_state_families",
]

TREE_STATES = ("starting", "running", "degraded", "failed", "stopping", "stopped")
AGENT_STATES = tuple(s.value for s in SlotState)
SUPERVISOR_STATES = ("starting", "running", "terminating", "down", "stopped", "failed")
BREAKER_STATES = tuple(s.value for s in BreakerState)

_LE = tuple(repr(bound) for bound in LATENCY_BUCKETS)


def histogram_buckets(hist: LatencyHistogram) -> tuple[list[tuple[str, float]], float]:
    """Cumulative Prometheus buckets (ending with +Inf) and the sum of one histogram.

    The buckets come from one copy of the per-bucket counts, so they are consistent with each
    other even while a handler observes concurrently; +Inf (hence _count) is their total,
    which is `hist.n` whenever no observation is in progress."""
    counts = list(hist.counts)
    total = hist.total
    buckets: list[tuple[str, float]] = []
    running = 0
    for le, count in zip(_LE, counts, strict=False):
        running += count
        buckets.append((le, float(running)))
    buckets.append(("+Inf", float(sum(counts))))
    return buckets, total


def tree_families(system: System) -> list[Family]:
    """Every family of one scrape: the tree's, the actors', the histograms'."""
    health = system.health()
    tree = system._tree
    with tree.lock:
        slots = dict(tree.slots)
    actors = list(health.actors.values())
    return [
        *tree_state_families(health),
        *actor_families(actors),
        *histogram_families(actors, slots),
    ]


def actor_families(actors: list[ActorHealth]) -> list[Family]:
    """The families read from the actors' health entries alone."""
    supervisors = [a for a in actors if a.kind == "supervisor"]
    agents = [a for a in actors if a.kind != "supervisor"]
    families = [
        StateSets(
            "hivekeeper_actor_state",
            "An actor's state: 1 for the current one.",
            [
                (a.path, SUPERVISOR_STATES if a.kind == "supervisor" else AGENT_STATES, a.state)
                for a in actors
            ],
        ),
        PathValues(
            COUNTER,
            "hivekeeper_restarts_total",
            "Times the actor was restarted.",
            [a.path for a in actors],
            [a.restarts for a in actors],
        ),
        *_supervisor_families(supervisors),
    ]
    if agents:
        families += [
            *_breaker_families(agents),
            *_agent_families(agents),
            *_isolation_families(agents),
            *durability_families(agents),
        ]
    return [f for f in families if len(f) or not f.optional]


def tree_state_families(health: TreeHealth) -> list[Family]:
    root, state = health.root, health.state
    return [
        PathValues(
            GAUGE,
            "hivekeeper_tree_up",
            "1 while the tree runs (healthy or degraded).",
            [root],
            [state in ("running", "degraded")],
        ),
        PathValues(
            GAUGE,
            "hivekeeper_tree_failed",
            "1 once the root supervisor has given up.",
            [root],
            [state == "failed"],
        ),
        StateSets(
            "hivekeeper_tree_state",
            "The tree's state: 1 for the current one.",
            [(root, TREE_STATES, state)],
        ),
        LabelledValues(
            COUNTER,
            "hivekeeper_dead_letters_total",
            "Messages nobody handled, by reason.",
            ("path", "reason"),
            [((root, reason), n) for reason, n in sorted(health.dead_letters.items())],
        ),
        *store_families(health),
    ]


def _supervisor_families(sups: list[ActorHealth]) -> list[Family]:
    paths = [a.path for a in sups]
    return [
        PathValues(
            GAUGE,
            "hivekeeper_supervisor_budget_used",
            "Restarts inside the current intensity window.",
            paths,
            [a.budget_used for a in sups],
        ),
        per_path(
            GAUGE,
            "hivekeeper_supervisor_max_restarts",
            "Restarts allowed inside one window.",
            sups,
            [a.max_restarts for a in sups],
        ),
        per_path(
            GAUGE,
            "hivekeeper_supervisor_window_seconds",
            "Length of the intensity window.",
            sups,
            [a.within_seconds for a in sups],
        ),
        PathValues(
            COUNTER,
            "hivekeeper_supervisor_escalations_total",
            "Times the supervisor gave up and escalated.",
            paths,
            [a.escalations for a in sups],
        ),
    ]


def _breaker_families(agents: list[ActorHealth]) -> list[Family]:
    guarded = [(a.path, a.breaker) for a in agents if a.breaker is not None]
    paths = [p for p, _ in guarded]
    breakers = [b for _, b in guarded]
    return [
        StateSets(
            "hivekeeper_breaker_state",
            "Circuit breaker state: 1 for the current one.",
            [(p, BREAKER_STATES, b.state) for p, b in guarded],
            optional=True,
        ),
        PathValues(
            GAUGE,
            "hivekeeper_breaker_failures",
            "Consecutive failures counted now.",
            paths,
            [b.failures for b in breakers],
            optional=True,
        ),
        PathValues(
            GAUGE,
            "hivekeeper_breaker_fail_max",
            "Consecutive failures that open it.",
            paths,
            [b.fail_max for b in breakers],
            optional=True,
        ),
        PathValues(
            COUNTER,
            "hivekeeper_breaker_failures_total",
            "Breaker failures ever counted.",
            paths,
            [b.failures_total for b in breakers],
            optional=True,
        ),
        PathValues(
            COUNTER,
            "hivekeeper_breaker_opens_total",
            "Times the breaker opened.",
            paths,
            [b.opens_total for b in breakers],
            optional=True,
        ),
    ]


def _agent_families(agents: list[ActorHealth]) -> list[Family]:
    paths = [a.path for a in agents]

    def each(kind: str, name: str, doc: str, values: list[float]) -> PathValues:
        return PathValues(kind, name, doc, paths, values)

    return [
        each(
            GAUGE, "hivekeeper_mailbox_depth", "Messages queued.", [a.mailbox_depth for a in agents]
        ),
        per_path(
            GAUGE,
            "hivekeeper_mailbox_limit",
            "The mailbox bound.",
            agents,
            [a.mailbox_limit for a in agents],
        ),
        each(GAUGE, "hivekeeper_busy", "1 while a handler runs.", [a.busy for a in agents]),
        each(
            GAUGE,
            "hivekeeper_degraded",
            "1 while a fallback answers in its place.",
            [a.degraded for a in agents],
        ),
        each(
            COUNTER,
            "hivekeeper_messages_processed_total",
            "Messages whose handler ran to an answer.",
            [a.processed for a in agents],
        ),
        LabelledValues(
            COUNTER,
            "hivekeeper_failures_total",
            "Failures by kind.",
            ("path", "kind"),
            [((a.path, k), n) for a in agents if a.failures for k, n in sorted(a.failures.items())],
        ),
        each(
            COUNTER,
            "hivekeeper_fallback_answers_total",
            "Asks to this path that a fallback answered.",
            [a.fallback_answers for a in agents],
        ),
        each(
            COUNTER,
            "hivekeeper_agent_dead_letters_total",
            "Dead letters posted for this path.",
            [a.dead_letters for a in agents],
        ),
        each(
            GAUGE,
            "hivekeeper_abandoned_threads",
            "Abandoned handler threads still running.",
            [a.abandoned for a in agents],
        ),
        each(
            COUNTER,
            "hivekeeper_abandoned_threads_total",
            "Handler threads ever abandoned.",
            [a.abandoned_total for a in agents],
        ),
    ]


def _isolation_families(agents: list[ActorHealth]) -> list[Family]:
    return [
        LabelledValues(
            GAUGE,
            "hivekeeper_isolation",
            "Where the agent runs (label isolation).",
            ("path", "isolation"),
            [((a.path, a.isolation), 1.0) for a in agents if a.isolation is not None],
            optional=True,
        ),
        LabelledValues(
            COUNTER,
            "hivekeeper_kills_total",
            "Worker processes killed or dead, by reason.",
            ("path", "reason"),
            [((a.path, r), n) for a in agents if a.kills for r, n in sorted(a.kills.items())],
        ),
        per_path(
            GAUGE,
            "hivekeeper_worker_pid",
            "The agent's worker process.",
            agents,
            [a.pid for a in agents],
        ),
        LabelledValues(
            GAUGE,
            "hivekeeper_ray_actor",
            "A Ray agent's current actor and node (labels).",
            ("path", "node_id", "actor_id"),
            [
                ((a.path, a.node_id or "", a.actor_id), 1.0)
                for a in agents
                if a.actor_id is not None
            ],
            optional=True,
        ),
        per_path(
            GAUGE,
            "hivekeeper_worker_rss_bytes",
            "The worker's resident memory.",
            agents,
            [a.rss_mb * 1024 * 1024 if a.rss_mb is not None else None for a in agents],
        ),
    ]


def histogram_families(actors: list[ActorHealth], slots: dict[str, AgentSlot]) -> list[Family]:
    """Results and handling times by status, from the slots' histograms (of the agents that
    have handled a message: the others have none)."""
    if not any(a.kind != "supervisor" for a in actors):
        return []
    results: list[tuple[tuple[str, str], float]] = []
    handling: list[tuple[tuple[str, str], list[tuple[str, float]], float]] = []
    for a in [a for a in actors if a.processed]:  # a supervisor's is 0
        slot = slots.get(a.path)
        if slot is None:
            continue
        for status, hist in sorted(slot.stats.histograms.items()):
            buckets, total = histogram_buckets(hist)
            results.append(((a.path, status), buckets[-1][1]))
            handling.append(((a.path, status), buckets, total))
    return [
        LabelledValues(
            COUNTER,
            "hivekeeper_results_total",
            "Answers of handlers that ran to an answer, by status.",
            ("path", "status"),
            results,
        ),
        Histograms(
            "hivekeeper_handling_seconds",
            "Time handlers took, by the status of their answer.",
            ("path", "status"),
            handling,
        ),
    ]
