"""Per-slot counters the runtime keeps as it goes, so that a health snapshot reads them
without asking any actor anything."""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass, field

from actors._redaction import redact_text

__all__ = ["LATENCY_BUCKETS", "LatencyHistogram", "SlotStats", "percentile"]

# Upper bounds in seconds (Prometheus' default buckets plus finer ones below 5 ms and longer
# ones for LLM calls); the +Inf bucket is implicit.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


@dataclass(eq=False)
class LatencyHistogram:
    """Cumulative-at-read histogram: counts[i] = observations in (bucket[i-1], bucket[i]];
    counts[-1] = above the last bound. Observing is one bisect and two adds."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


def percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class SlotStats:
    """processed: messages whose handler ran to an answer; failures: by kind (crash, timeout,
    invalid_output, rejected, ...); fallback_answers: asks to this path that a fallback
    answered; latencies: handling times (seconds) of the most recent messages. (A slotted
    class with a plain __init__: every agent of a 100,000-agent tree has one.)"""

    __slots__ = (
        "_lock",
        "abandoned_running",
        "abandoned_total",
        "failures",
        "fallback_answers",
        "histograms",
        "kills",
        "last_error",
        "last_heartbeat",
        "latencies",
        "processed",
        "restarts",
        "started_at",
    )

    def __init__(self) -> None:
        self.processed = 0
        self.failures: Counter[str] = Counter()
        self.fallback_answers = 0
        self.restarts = 0
        self.abandoned_total = 0
        self.abandoned_running = 0
        self.last_error: str | None = None
        self.last_heartbeat: float | None = None  # wall clock of the last message or heartbeat
        self.started_at: float | None = None  # wall clock of the current instance's start
        self.latencies: deque[float] = deque(maxlen=1024)
        self.histograms: dict[str, LatencyHistogram] = {}
        self.kills: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handled(self, seconds: float, status: str) -> None:
        self.processed += 1
        self.latencies.append(seconds)
        self.last_heartbeat = time.time()
        hist = self.histograms.get(status)
        if hist is None:
            hist = self.histograms[status] = LatencyHistogram()
        hist.observe(seconds)

    def killed(self, reason: str) -> None:
        """A worker of this agent was killed (deadline, memory, died, shutdown)."""
        with self._lock:
            self.kills[reason] += 1

    def beat(self) -> None:
        """A handler reported progress (context.heartbeat())."""
        self.last_heartbeat = time.time()

    def failed(self, kind: str, error: str | None) -> None:
        """Count a failure (from any thread); the error shown in health has secrets masked."""
        with self._lock:
            self.failures[kind] += 1
            if error is not None:
                self.last_error = redact_text(error)

    def count_abandoned(self, delta: int, new: bool = False) -> None:
        with self._lock:
            self.abandoned_running += delta
            if new:
                self.abandoned_total += 1
