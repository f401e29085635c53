"""Tell throughput through one agent, end to end: raw pykka vs hivekeeper, in one run.

Run: python -m bench.tell_throughput     (env: REPEATS=5 N=50000)
N tells to one agent, then one ask behind them (mailboxes are FIFO, so its answer means every
tell has been handled); messages per second from the first tell to that answer. The
hivekeeper agent has the issue's configuration: a message deadline, a breaker, a fallback; as
a thread agent and as a task agent (isolation="task").
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors import Agent, Rule, RuleBasedAgent
from bench._common import quiet
from bench._table import Row, main_for, ratio_row
from strategies import BreakerPolicy
from supervisor import ChildSpec, Supervisor, start

REPEATS = int(os.environ.get("REPEATS", "5"))
N = int(os.environ.get("N", "50000"))


class RawCounter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        self.count += 1
        return self.count


class Counter(Agent):
    def __init__(self) -> None:
        self.count = 0

    def handle(self, message: Any) -> Any:
        self.count += 1
        return self.count


class AsyncCounter(Agent):
    def __init__(self) -> None:
        self.count = 0

    async def handle(self, message: Any) -> Any:
        self.count += 1
        return self.count


class Stand(RuleBasedAgent):
    rules = (Rule(when=lambda m: True, reply=lambda m: "fallback"),)


def rate(tell: Callable[[int], Any], drain: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        tell(i)
    drain()
    return n / (time.perf_counter() - t0)


def measure() -> tuple[float, float, float]:
    """(raw pykka, hivekeeper thread agent, task agent) tells per second: medians over
    REPEATS interleaved runs."""
    quiet()
    tree = Supervisor(
        "bench",
        children=[
            ChildSpec("c", Counter, breaker=BreakerPolicy(), fallback=Stand),
            ChildSpec("t", AsyncCounter, isolation="task", breaker=BreakerPolicy(), fallback=Stand),
        ],
    )
    ref = RawCounter.start()
    raw: list[float] = []
    ours: list[float] = []
    tasks: list[float] = []
    with start(tree) as system:

        def raw_run(n: int) -> float:
            return rate(ref.tell, lambda: ref.ask("end", timeout=60.0), n)

        def our_run(n: int, path: str = "bench/c") -> float:
            return rate(
                lambda i: system.tell(path, i),
                lambda: system.ask(path, "end", timeout=60.0),
                n,
            )

        raw_run(5000)
        our_run(5000)
        our_run(5000, "bench/t")
        for _ in range(REPEATS):
            raw.append(raw_run(N))
            ours.append(our_run(N))
            tasks.append(our_run(N, "bench/t"))
    ref.stop()
    return statistics.median(raw), statistics.median(ours), statistics.median(tasks)


def rows() -> list[Row]:
    raw, ours, task = measure()
    return [
        ratio_row("tell throughput, one agent", ours, raw, "msg/s", 0.9, at_least=True),
        ratio_row("tell throughput, one task agent", task, raw, "msg/s", 0.9, at_least=True),
    ]


if __name__ == "__main__":
    main_for(rows)
