"""Cascade isolation: do misbehaving agents slow their healthy neighbours down?

Run: python -m bench.cascade     (env: N=5000 REPEATS=3 RATE=200)
20 healthy echo agents + 2 misbehaving ones: "crasher" raises on every message, "hanger"
blocks past its 0.2 s message deadline. The main thread measures ask p50/p99 to the healthy
agents alone, then while two load threads send RATE asks/s each to the misbehaving pair.
Three neighbourhoods, each measured against its own "alone" baseline in the same run:
  well-behaved   the two neighbours are healthy echo agents (the cost of the load itself)
  unprotected    misbehaving, with a rule-based fallback only: every ask crashes/hangs them
  protected      misbehaving, with a circuit breaker + fallback (the README's setup)
Prints the ratio with/alone (target <= 1.2).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from typing import Any

from actors import Agent, RuleBasedAgent
from bench._common import pct, quiet
from strategies import BreakerPolicy, OneForOne
from supervisor import ChildSpec, Supervisor, start

N = int(os.environ.get("N", "5000"))
REPEATS = int(os.environ.get("REPEATS", "3"))
RATE = float(os.environ.get("RATE", "200"))


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


def neighbours(kind: str) -> list[ChildSpec]:
    if kind == "well-behaved":
        return [ChildSpec("bad1", Echo), ChildSpec("bad2", Echo)]
    breaker = BreakerPolicy(fail_max=5, reset_timeout=1.0) if kind == "protected" else None
    return [
        ChildSpec("bad1", Crasher, fallback=Safe, breaker=breaker),
        ChildSpec("bad2", Hanger, message_timeout=0.2, fallback=Safe, breaker=breaker),
    ]


def measure(system: Any, n: int) -> tuple[float, float]:
    pc = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = pc()
        system.ask(f"bench/ok{i % 20}", i, timeout=2.0)
        out.append(pc() - t0)
    return pct(out, 0.5) / 1e3, pct(out, 0.99) / 1e3


def run(kind: str) -> tuple[tuple[float, float], tuple[float, float], str]:
    tree = Supervisor(
        "bench",
        strategy=OneForOne(max_restarts=1_000_000, within_seconds=1.0),
        children=[ChildSpec(f"ok{i}", Echo) for i in range(20)] + neighbours(kind),
    )
    with start(tree) as system:
        measure(system, 1000)
        alone, noisy, sent = [], [], [0]
        for _ in range(REPEATS):
            alone.append(measure(system, N))
            stop = threading.Event()

            def load(path: str, stop: threading.Event = stop) -> None:
                period = 1.0 / RATE
                next_at = time.monotonic()
                while not stop.is_set():
                    system.ask(path, "x", timeout=2.0)
                    sent[0] += 1
                    next_at += period
                    stop.wait(max(0.0, next_at - time.monotonic()))

            threads = [
                threading.Thread(target=load, args=(p,)) for p in ("bench/bad1", "bench/bad2")
            ]
            for t in threads:
                t.start()
            noisy.append(measure(system, N))
            stop.set()
            for t in threads:
                t.join()
        health = system.health()
    b1, b2 = health.actors["bench/bad1"], health.actors["bench/bad2"]
    note = (
        f"{sent[0]} neighbour asks; restarts {b1.restarts}+{b2.restarts}, "
        f"abandoned threads {b2.abandoned_total}, fallback answers {b1.fallback_answers + b2.fallback_answers}"
    )
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    return (med(alone, 0), med(alone, 1)), (med(noisy, 0), med(noisy, 1)), note


def main() -> None:
    quiet()
    print(
        f"cascade isolation: healthy asks, median of {REPEATS} x {N}; neighbours get {RATE:g} asks/s each"
    )
    with_neighbours = {}
    for kind in ("well-behaved", "unprotected", "protected"):
        (a50, a99), (n50, n99), note = run(kind)
        with_neighbours[kind] = (n50, n99)
        print(
            f"  {kind:13s} alone p50 {a50:6.1f} us p99 {a99:6.1f} us | with neighbours p50 {n50:6.1f} us "
            f"p99 {n99:6.1f} us | ratio p50 {n50 / a50:4.2f}x p99 {n99 / a99:4.2f}x"
        )
        print(f"  {'':13s} ({note})")
    w50, w99 = with_neighbours["well-behaved"]
    for kind in ("unprotected", "protected"):
        n50, n99 = with_neighbours[kind]
        print(
            f"  {kind} vs well-behaved neighbours at the same rate: p50 {n50 / w50:4.2f}x  p99 {n99 / w99:4.2f}x"
        )


if __name__ == "__main__":
    main()
