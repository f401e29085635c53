"""Cascade isolation: do misbehaving agents slow their healthy neighbours down?

Run: python -m bench.cascade     (env: N=5000 REPEATS=3)
20 healthy echo agents + 2 misbehaving ones: "crasher" raises on every message, "hanger"
blocks past its 0.2 s message deadline (and is abandoned and replaced every time). The main
thread measures ask p50/p99 to the healthy agents, first alone, then while two load threads
keep hammering the misbehaving pair. Prints the ratio (target <= 1.2).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

from actors import Agent, RuleBasedAgent
from bench._common import pct, quiet
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start

N = int(os.environ.get("N", "5000"))
REPEATS = int(os.environ.get("REPEATS", "3"))


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class Crasher(Agent):
    def handle(self, message: Any) -> Any:
        raise RuntimeError("always")


class Hanger(Agent):
    def __init__(self) -> None:
        self._never = threading.Event()

    def handle(self, message: Any) -> Any:
        self._never.wait(0.5)  # well past its 0.2 s deadline
        return "late"


class Safe(RuleBasedAgent):
    default = "safe"


def measure(system: Any, n: int) -> tuple[float, float]:
    pc = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = pc()
        system.ask(f"bench/ok{i % 20}", i, timeout=2.0)
        out.append(pc() - t0)
    return pct(out, 0.5) / 1e3, pct(out, 0.99) / 1e3


def main() -> None:
    quiet()
    children = [ChildSpec(f"ok{i}", Echo) for i in range(20)] + [
        ChildSpec("crasher", Crasher, fallback=Safe),
        ChildSpec("hanger", Hanger, message_timeout=0.2, fallback=Safe),
    ]
    tree = Supervisor(
        "bench", strategy=OneForOne(max_restarts=1_000_000, within_seconds=1.0), children=children
    )
    with start(tree) as system:
        measure(system, 1000)
        alone, noisy, bad_answers = [], [], [0]
        for _ in range(REPEATS):
            alone.append(measure(system, N))
            stop = threading.Event()

            def hammer(path: str, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    system.ask(path, "x", timeout=2.0)
                    bad_answers[0] += 1

            load = [
                threading.Thread(target=hammer, args=(p,))
                for p in ("bench/crasher", "bench/hanger")
            ]
            for t in load:
                t.start()
            noisy.append(measure(system, N))
            stop.set()
            for t in load:
                t.join()
        health = system.health()
    a50, a99 = statistics.median(x[0] for x in alone), statistics.median(x[1] for x in alone)
    n50, n99 = statistics.median(x[0] for x in noisy), statistics.median(x[1] for x in noisy)
    crasher, hanger = health.actors["bench/crasher"], health.actors["bench/hanger"]
    print(f"cascade isolation: healthy asks, median of {REPEATS} x {N}")
    print(f"  alone                        p50 {a50:7.1f} us  p99 {a99:7.1f} us")
    print(
        f"  with misbehaving neighbours  p50 {n50:7.1f} us  p99 {n99:7.1f} us   ratio p50 {n50 / a50:4.2f}x  p99 {n99 / a99:4.2f}x"
    )
    print(
        f"  neighbours meanwhile: {bad_answers[0]} asks answered, crasher restarts {crasher.restarts}, "
        f"hanger restarts {hanger.restarts} (abandoned threads {hanger.abandoned_total})"
    )


if __name__ == "__main__":
    main()
