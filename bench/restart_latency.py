"""Crash -> replacement ready: raw pykka's naive restart vs a hivekeeper one_for_one restart.

Run: python -m bench.restart_latency     (env: REPEATS=5 K=300)
Raw pykka (the anchor): a tell raises, on_failure notifies a "supervisor" thread that starts
a new actor; time until the new actor's on_start has run. hivekeeper: a tell makes the agent
crash; its supervisor actor restarts it; time until the new instance's on_start has run.
"""

from __future__ import annotations

import logging
import os
import queue
import statistics
import sys
import time
from typing import Any

import pykka

from actors import Agent
from bench._common import pct, quiet
from bench._table import Row, main_for, ratio_row
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start

REPEATS = int(os.environ.get("REPEATS", "5"))
K = int(os.environ.get("K", "300"))
logging.getLogger("pykka").setLevel(logging.CRITICAL)
ready: queue.Queue[tuple[str, float]] = queue.Queue()


class RawCrashy(pykka.ThreadingActor):
    def on_start(self) -> None:
        ready.put(("ready", time.perf_counter()))

    def on_failure(self, *exc: Any) -> None:
        ready.put(("crashed", 0.0))

    def on_receive(self, message: Any) -> Any:
        raise RuntimeError("crash")


def raw_restarts(k: int) -> list[float]:
    ref = RawCrashy.start()
    ready.get()
    out = []
    for _ in range(k):
        t0 = time.perf_counter()
        ref.tell("die")
        kind, _ = ready.get()
        assert kind == "crashed"
        ref = RawCrashy.start()
        kind, t_ready = ready.get()
        out.append((t_ready - t0) * 1e6)
    ref.stop()
    return out


class Crashy(Agent):
    def __init__(self, q: queue.Queue[tuple[str, float]]) -> None:
        self.q = q

    def on_start(self) -> None:
        self.q.put(("ready", time.perf_counter()))

    def handle(self, message: Any) -> Any:
        raise RuntimeError("crash")


class AsyncCrashy(Crashy):
    async def handle(self, message: Any) -> Any:  # type: ignore[override]
        raise RuntimeError("crash")


def hk_restarts(k: int, isolation: str = "thread") -> list[float]:
    q: queue.Queue[tuple[str, float]] = queue.Queue()
    agent = AsyncCrashy if isolation == "task" else Crashy
    tree = Supervisor(
        "bench",
        strategy=OneForOne(max_restarts=10 * k, within_seconds=1.0),
        children=[ChildSpec("c", agent, args=(q,), isolation=isolation)],
    )
    out = []
    with start(tree) as system:
        q.get()
        for _ in range(k):
            t0 = time.perf_counter()
            system.tell("bench/c", "die")
            _, t_ready = q.get()
            out.append((t_ready - t0) * 1e6)
    return out


Pcts = tuple[float, float]


def measure() -> tuple[Pcts, Pcts, Pcts]:
    """(p50, p99) in microseconds of raw pykka, a hivekeeper thread agent and a task agent:
    medians over REPEATS interleaved runs."""
    quiet()
    raw_restarts(50)
    hk_restarts(50)
    hk_restarts(50, "task")
    runs: list[list[Pcts]] = [[], [], []]
    for _ in range(REPEATS):
        laps_of = (raw_restarts(K), hk_restarts(K), hk_restarts(K, "task"))
        for out, laps in zip(runs, laps_of, strict=True):
            out.append((pct(laps, 0.5), pct(laps, 0.99)))
    r, h, t = (
        (statistics.median(x[0] for x in got), statistics.median(x[1] for x in got)) for got in runs
    )
    return r, h, t


def rows() -> list[Row]:
    (r50, _), (h50, _), (t50, _) = measure()
    return [
        ratio_row("crash -> replacement answering p50", h50, r50, "us", 0.5),
        ratio_row("crash -> replacement answering p50, task agent", t50, r50, "us", 0.5),
    ]


def main() -> None:
    (r50, r99), (h50, h99), (t50, t99) = measure()
    print(f"crash -> replacement ready, median of {REPEATS} x {K} restarts")
    print(f"  raw pykka naive restart       p50 {r50:7.1f} us  p99 {r99:7.1f} us")
    for name, p50, p99 in (("one_for_one, thread", h50, h99), ("one_for_one, task", t50, t99)):
        print(
            f"  hivekeeper {name:19s} p50 {p50:7.1f} us  p99 {p99:7.1f} us"
            f"   ratio p50 {p50 / r50:4.2f}x  p99 {p99 / r99:4.2f}x"
        )


if __name__ == "__main__":
    if "--rows" in sys.argv[1:]:
        main_for(rows)
    else:
        main()
