"""Per-slot counters the runtime keeps as it goes, so that a health snapshot reads them
without asking any actor anything."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ["SlotStats", "percentile"]


def percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclass(eq=False)
class SlotStats:
    """processed: messages whose handler ran to an answer; failures: by kind (crash, timeout,
    invalid_output, rejected, ...); fallback_answers: asks to this path that a fallback
    answered; latencies: handling times (seconds) of the most recent messages."""

    processed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    fallback_answers: int = 0
    restarts: int = 0
    abandoned_total: int = 0
    abandoned_running: int = 0
    last_error: str | None = None
    last_heartbeat: float | None = None  # wall clock of the last finished message
    started_at: float | None = None  # wall clock of the current instance's start
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1024))

    def handled(self, seconds: float) -> None:
        self.processed += 1
        self.latencies.append(seconds)
        self.last_heartbeat = time.time()

    def failed(self, kind: str, error: str | None) -> None:
        self.failures[kind] += 1
        if error is not None:
            self.last_error = error
