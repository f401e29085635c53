"""Prometheus metrics for a running tree, built at scrape time from state the runtime already
keeps (the health snapshot and the per-slot counters and histograms). Nothing here runs on
the message path: handling a message never calls prometheus_client.

    from supervisor import render_metrics

    body = render_metrics(system)  # text exposition format 0.0.4, as bytes

Every series is labelled by `path` (the tree-wide ones by the root's path). The families:

tree
  hivekeeper_tree_up{path}                    1 while the tree runs (healthy or degraded)
  hivekeeper_tree_failed{path}                1 once the root supervisor has given up
  hivekeeper_tree_state{path,state}           one series per tree state, 1 for the current one
  hivekeeper_dead_letters_total{path,reason}  unhandled messages, by reason
every actor (agents, fallbacks, supervisors)
  hivekeeper_actor_state{path,state}          one series per state of its kind, 1 for the current
  hivekeeper_restarts_total{path}             times it was restarted
agents and fallbacks
  hivekeeper_breaker_state{path,state}        closed / open / half_open, 1 for the current one
                                              (agents with a breaker only)
  hivekeeper_breaker_failures{path}           consecutive failures counted now
  hivekeeper_breaker_fail_max{path}           failures that open it
  hivekeeper_breaker_failures_total{path}     failures ever counted
  hivekeeper_breaker_opens_total{path}        times it opened
  hivekeeper_mailbox_depth{path}              messages queued
  hivekeeper_mailbox_limit{path}              its bound (bounded mailboxes only)
  hivekeeper_busy{path}                       1 while a handler runs
  hivekeeper_degraded{path}                   1 while a fallback answers in its place
  hivekeeper_messages_processed_total{path}   handlers that ran to an answer
  hivekeeper_results_total{path,status}       those answers, by ExecutionStatus
  hivekeeper_failures_total{path,kind}        failures by kind (crash, timeout, invalid_output,
                                              rejected, expired, start, stop, ...)
  hivekeeper_fallback_answers_total{path}     asks to this path that a fallback answered
  hivekeeper_agent_dead_letters_total{path}   dead letters posted for this path
  hivekeeper_abandoned_threads{path}          abandoned handler threads still running
  hivekeeper_abandoned_threads_total{path}    handler threads ever abandoned
  hivekeeper_handling_seconds{path,status}    histogram of handling time, by ExecutionStatus
  hivekeeper_isolation{path,isolation}        1, labelled with where it runs (thread, process)
  hivekeeper_kills_total{path,reason}         worker processes killed or dead (deadline,
                                              memory, died)
  hivekeeper_worker_pid{path}                 its worker process (process agents while up)
  hivekeeper_worker_rss_bytes{path}           that worker's resident memory (on this machine)
  hivekeeper_ray_actor{path,node_id,actor_id}  1, labelled with a Ray agent's node and actor
supervisors
  hivekeeper_supervisor_budget_used{path}     restarts inside the current intensity window
  hivekeeper_supervisor_max_restarts{path}    restarts allowed inside one window
  hivekeeper_supervisor_window_seconds{path}  the window's length
  hivekeeper_supervisor_escalations_total{path}  times it gave up and escalated
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ..delivery._breaker import BreakerState
from ..delivery._slot import SlotState
from ..delivery._stats import LATENCY_BUCKETS, LatencyHistogram
from ._health import ActorHealth, TreeHealth

if TYPE_CHECKING:
    from ..system._system import System

__all__ = [
    "METRICS_CONTENT_TYPE",
    "TreeCollector",
    "histogram_buckets",
    "metrics_registry",
    "render_metrics",
]

METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

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


class _Families:
    """The metric families of one scrape, created on first use, emitted in creation order."""

    def __init__(self) -> None:
        self._made: dict[str, Metric] = {}

    def gauge(self, name: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = GaugeMetricFamily(name, doc, labels=labels)
        assert isinstance(made, GaugeMetricFamily)
        return made

    def counter(self, name: str, doc: str, labels: tuple[str, ...]) -> CounterMetricFamily:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = CounterMetricFamily(name, doc, labels=labels)
        assert isinstance(made, CounterMetricFamily)
        return made

    def histogram(self, name: str, doc: str, labels: tuple[str, ...]) -> HistogramMetricFamily:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = HistogramMetricFamily(name, doc, labels=labels)
        assert isinstance(made, HistogramMetricFamily)
        return made

    def __iter__(self) -> Iterator[Metric]:
        return iter(list(self._made.values()))


def _state_set(fam: GaugeMetricFamily, path: str, states: Iterable[str], current: str) -> None:
    known = tuple(states)
    for state in known if current in known else (*known, current):
        fam.add_metric([path, state], 1.0 if state == current else 0.0)


class TreeCollector:
    """A prometheus_client collector for one System. Register it in any CollectorRegistry
    (metrics_registry() keeps one per system); each collect() reads one health snapshot plus
    the slots' histograms. Safe to call from any thread, while the tree runs or after it
    stopped."""

    def __init__(self, system: System) -> None:
        self._system = system

    def collect(self) -> Iterable[Metric]:
        system = self._system
        health = system.health()
        tree = system._tree
        with tree.lock:
            slots = dict(tree.slots)
        out = _Families()
        self._tree_metrics(out, health)
        for actor in health.actors.values():
            self._actor_metrics(out, actor)
            slot = slots.get(actor.path)
            if slot is not None:
                self._histograms(out, actor.path, list(slot.stats.histograms.items()))
        return out

    @staticmethod
    def _tree_metrics(out: _Families, health: TreeHealth) -> None:
        root = health.root
        up = health.state in ("running", "degraded")
        out.gauge(
            "hivekeeper_tree_up", "1 while the tree runs (healthy or degraded).", ("path",)
        ).add_metric([root], 1.0 if up else 0.0)
        out.gauge(
            "hivekeeper_tree_failed", "1 once the root supervisor has given up.", ("path",)
        ).add_metric([root], 1.0 if health.state == "failed" else 0.0)
        _state_set(
            out.gauge(
                "hivekeeper_tree_state",
                "The tree's state: 1 for the current one.",
                ("path", "state"),
            ),
            root,
            TREE_STATES,
            health.state,
        )
        letters = out.counter(
            "hivekeeper_dead_letters_total",
            "Messages nobody handled, by reason.",
            ("path", "reason"),
        )
        for reason, count in sorted(health.dead_letters.items()):
            letters.add_metric([root, reason], float(count))

    @staticmethod
    def _actor_metrics(out: _Families, a: ActorHealth) -> None:
        p = [a.path]
        states = SUPERVISOR_STATES if a.kind == "supervisor" else AGENT_STATES
        _state_set(
            out.gauge(
                "hivekeeper_actor_state",
                "An actor's state: 1 for the current one.",
                ("path", "state"),
            ),
            a.path,
            states,
            a.state,
        )
        out.counter(
            "hivekeeper_restarts_total", "Times the actor was restarted.", ("path",)
        ).add_metric(p, float(a.restarts))
        if a.kind == "supervisor":
            TreeCollector._supervisor_metrics(out, a)
            return
        if a.breaker is not None:
            b = a.breaker
            _state_set(
                out.gauge(
                    "hivekeeper_breaker_state",
                    "Circuit breaker state: 1 for the current one.",
                    ("path", "state"),
                ),
                a.path,
                BREAKER_STATES,
                b.state,
            )
            out.gauge(
                "hivekeeper_breaker_failures", "Consecutive failures counted now.", ("path",)
            ).add_metric(p, float(b.failures))
            out.gauge(
                "hivekeeper_breaker_fail_max", "Consecutive failures that open it.", ("path",)
            ).add_metric(p, float(b.fail_max))
            out.counter(
                "hivekeeper_breaker_failures_total", "Breaker failures ever counted.", ("path",)
            ).add_metric(p, float(b.failures_total))
            out.counter(
                "hivekeeper_breaker_opens_total", "Times the breaker opened.", ("path",)
            ).add_metric(p, float(b.opens_total))
        out.gauge("hivekeeper_mailbox_depth", "Messages queued.", ("path",)).add_metric(
            p, float(a.mailbox_depth)
        )
        if a.mailbox_limit is not None:
            out.gauge("hivekeeper_mailbox_limit", "The mailbox bound.", ("path",)).add_metric(
                p, float(a.mailbox_limit)
            )
        out.gauge("hivekeeper_busy", "1 while a handler runs.", ("path",)).add_metric(
            p, 1.0 if a.busy else 0.0
        )
        out.gauge(
            "hivekeeper_degraded", "1 while a fallback answers in its place.", ("path",)
        ).add_metric(p, 1.0 if a.degraded else 0.0)
        out.counter(
            "hivekeeper_messages_processed_total",
            "Messages whose handler ran to an answer.",
            ("path",),
        ).add_metric(p, float(a.processed))
        failures = out.counter("hivekeeper_failures_total", "Failures by kind.", ("path", "kind"))
        for kind, count in sorted(a.failures.items()):
            failures.add_metric([a.path, kind], float(count))
        out.counter(
            "hivekeeper_fallback_answers_total",
            "Asks to this path that a fallback answered.",
            ("path",),
        ).add_metric(p, float(a.fallback_answers))
        out.counter(
            "hivekeeper_agent_dead_letters_total",
            "Dead letters posted for this path.",
            ("path",),
        ).add_metric(p, float(a.dead_letters))
        out.gauge(
            "hivekeeper_abandoned_threads",
            "Abandoned handler threads still running.",
            ("path",),
        ).add_metric(p, float(a.abandoned))
        out.counter(
            "hivekeeper_abandoned_threads_total",
            "Handler threads ever abandoned.",
            ("path",),
        ).add_metric(p, float(a.abandoned_total))
        TreeCollector._isolation_metrics(out, a)

    @staticmethod
    def _isolation_metrics(out: _Families, a: ActorHealth) -> None:
        p = [a.path]
        if a.isolation is not None:
            out.gauge(
                "hivekeeper_isolation",
                "Where the agent runs (label isolation).",
                ("path", "isolation"),
            ).add_metric([a.path, a.isolation], 1.0)
        kills = out.counter(
            "hivekeeper_kills_total",
            "Worker processes killed or dead, by reason.",
            ("path", "reason"),
        )
        for reason, count in sorted(a.kills.items()):
            kills.add_metric([a.path, reason], float(count))
        if a.pid is not None:
            out.gauge("hivekeeper_worker_pid", "The agent's worker process.", ("path",)).add_metric(
                p, float(a.pid)
            )
        if a.actor_id is not None:
            out.gauge(
                "hivekeeper_ray_actor",
                "A Ray agent's current actor and node (labels).",
                ("path", "node_id", "actor_id"),
            ).add_metric([a.path, a.node_id or "", a.actor_id], 1.0)
        if a.rss_mb is not None:
            out.gauge(
                "hivekeeper_worker_rss_bytes", "The worker's resident memory.", ("path",)
            ).add_metric(p, a.rss_mb * 1024 * 1024)

    @staticmethod
    def _supervisor_metrics(out: _Families, a: ActorHealth) -> None:
        p = [a.path]
        out.gauge(
            "hivekeeper_supervisor_budget_used",
            "Restarts inside the current intensity window.",
            ("path",),
        ).add_metric(p, float(a.budget_used))
        if a.max_restarts is not None:
            out.gauge(
                "hivekeeper_supervisor_max_restarts",
                "Restarts allowed inside one window.",
                ("path",),
            ).add_metric(p, float(a.max_restarts))
        if a.within_seconds is not None:
            out.gauge(
                "hivekeeper_supervisor_window_seconds",
                "Length of the intensity window.",
                ("path",),
            ).add_metric(p, float(a.within_seconds))
        out.counter(
            "hivekeeper_supervisor_escalations_total",
            "Times the supervisor gave up and escalated.",
            ("path",),
        ).add_metric(p, float(a.escalations))

    @staticmethod
    def _histograms(out: _Families, path: str, hists: list[tuple[str, LatencyHistogram]]) -> None:
        results = out.counter(
            "hivekeeper_results_total",
            "Answers of handlers that ran to an answer, by status.",
            ("path", "status"),
        )
        family = out.histogram(
            "hivekeeper_handling_seconds",
            "Time handlers took, by the status of their answer.",
            ("path", "status"),
        )
        for status, hist in sorted(hists):
            buckets, total = histogram_buckets(hist)
            results.add_metric([path, status], buckets[-1][1])
            family.add_metric([path, status], buckets, total)


def metrics_registry(system: System) -> CollectorRegistry:
    """A new CollectorRegistry holding only a TreeCollector for `system` (never the
    process-wide default registry). Keep it to serve or push the system's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TreeCollector(system))
    return registry


def render_metrics(system: System) -> bytes:
    """The system's metrics in the Prometheus text format 0.0.4 (METRICS_CONTENT_TYPE)."""
    return generate_latest(metrics_registry(system))
