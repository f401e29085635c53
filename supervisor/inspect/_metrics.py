"""Prometheus metrics for a running tree, built at scrape time from state the runtime already
keeps (the health snapshot and the per-slot counters and histograms). Nothing here runs on
the message path: handling a message never calls prometheus_client. render_metrics writes the
text itself (_exposition.py) and reuses what did not change since the tree's previous scrape:
a few ms on top of health() for 10,000 idle agents, where prometheus_client's own formatting
of the same 190,000 samples takes over a second. TreeCollector hands the same families to
prometheus_client, for a registry of your own (the same bytes, slower).

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

from collections.abc import Iterable
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ._exposition import RenderCache, render_parts
from ._health import ActorHealth
from ._metric_families import (
    actor_families,
    histogram_buckets,
    histogram_families,
    tree_families,
    tree_state_families,
)

if TYPE_CHECKING:
    from ..supervision._tree import TreeIndex
    from ..system._system import System

__all__ = [
    "METRICS_CONTENT_TYPE",
    "TreeCollector",
    "histogram_buckets",
    "metrics_registry",
    "render_metrics",
]

METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class TreeCollector:
    """A prometheus_client collector for one System. Register it in any CollectorRegistry
    (metrics_registry() keeps one per system); each collect() reads one health snapshot plus
    the slots' histograms. Safe to call from any thread, while the tree runs or after it
    stopped. (render_metrics writes the same samples, much faster.)"""

    def __init__(self, system: System) -> None:
        self._system = system

    def collect(self) -> Iterable[Metric]:
        return [family.to_metric() for family in tree_families(self._system)]


def metrics_registry(system: System) -> CollectorRegistry:
    """A new CollectorRegistry holding only a TreeCollector for `system` (never the
    process-wide default registry). Keep it to serve or push the system's metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TreeCollector(system))
    return registry


class _Scrapes:
    """What a tree's previous render_metrics wrote. Health hands back the same entry for an
    agent that did not change, so when every entry is the one of the previous scrape the
    actors' families are the same bytes again; otherwise only the families whose data
    changed are written again (RenderCache). Holds plain values only."""

    def __init__(self) -> None:
        self.cache = RenderCache()
        self.actors: tuple[list[ActorHealth], list[bytes]] = ([], [])  # entries, their families
        self.scrape: tuple[list[bytes], bytes] = ([], b"")  # every family's bytes, joined


_SCRAPES: WeakKeyDictionary[TreeIndex, _Scrapes] = WeakKeyDictionary()


def render_metrics(system: System) -> bytes:
    """The system's metrics in the Prometheus text format 0.0.4 (METRICS_CONTENT_TYPE)."""
    tree = system._tree
    scrapes = _SCRAPES.get(tree)
    if scrapes is None:
        scrapes = _SCRAPES[tree] = _Scrapes()
    health = system.health()
    with tree.lock:
        slots = dict(tree.slots)
    actors = list(health.actors.values())
    before, actor_parts = scrapes.actors
    if actors != before:  # the same entries compare by identity: one pass, in C
        actor_parts = render_parts(actor_families(actors), scrapes.cache)
        scrapes.actors = (actors, actor_parts)
    parts = [
        *render_parts(tree_state_families(health), scrapes.cache),
        *actor_parts,
        *render_parts(histogram_families(actors, slots), scrapes.cache),
    ]
    last_parts, text = scrapes.scrape
    if parts != last_parts:  # else nothing changed: the same bytes, not joined again
        text = b"".join(parts)
        scrapes.scrape = (parts, text)
    return text
