"""The metric families of durability: per durable or persisting agent (pending messages,
redeliveries, duplicates, its last snapshot, a state error) and of the system's store
(commits, commit latency, pending messages)."""

from __future__ import annotations

from ._exposition import COUNTER, GAUGE, Family, LabelledValues, PathValues, per_path
from ._health import ActorHealth, TreeHealth

__all__ = ["durability_families", "store_families"]


def durability_families(agents: list[ActorHealth]) -> list[Family]:
    kept = [a for a in agents if a.durable or a.persist]
    durable = [a for a in kept if a.durable]
    persist = [a for a in kept if a.persist]
    return [
        per_path(
            GAUGE,
            "hivekeeper_durable_pending",
            "Messages committed to the store for a durable agent and not yet handled.",
            durable,
            [a.pending_durable for a in durable],
        ),
        per_path(
            COUNTER,
            "hivekeeper_redelivered_total",
            "Messages recovered from the store on start that had been delivered before.",
            durable,
            [a.redelivered for a in durable],
        ),
        per_path(
            COUNTER,
            "hivekeeper_duplicates_total",
            "Sends recognised by their idempotency key and not queued again.",
            durable,
            [a.duplicates for a in durable],
        ),
        per_path(
            GAUGE,
            "hivekeeper_snapshot_timestamp_seconds",
            "When the agent's state was last handed to the store (unix time).",
            persist,
            [a.last_snapshot_at.timestamp() if a.last_snapshot_at else None for a in persist],
        ),
        per_path(
            GAUGE,
            "hivekeeper_state_error",
            "1 while the agent's last snapshot could not be restored or saved.",
            persist,
            [float(a.state_error is not None) for a in persist],
        ),
    ]


def store_families(health: TreeHealth) -> list[Family]:
    store, root = health.store, health.root
    if store is None:
        return []
    return [
        PathValues(
            COUNTER,
            "hivekeeper_store_commits_total",
            "Transactions the store committed (group commit: one for many writes).",
            [root],
            [store.commits],
        ),
        PathValues(
            GAUGE,
            "hivekeeper_store_pending",
            "Messages pending in the store, for every durable agent.",
            [root],
            [store.pending],
        ),
        LabelledValues(
            GAUGE,
            "hivekeeper_store_commit_seconds",
            "The store's commit latency over its recent commits, by quantile.",
            ("path", "quantile"),
            [
                ((root, "0.5"), store.commit_p50_ms / 1000.0),
                ((root, "0.99"), store.commit_p99_ms / 1000.0),
            ],
        ),
    ]
