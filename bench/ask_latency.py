"""Ask round trip: raw pykka vs hivekeeper, measured in one run, interleaved.

Run: python -m bench.ask_latency     (env: REPEATS=5 N=20000)
Variants: raw pykka ref.ask(msg, timeout=1.0) (the anchor); hivekeeper system.ask with the
default ChildSpec (30 s message deadline armed); without a deadline; with a circuit breaker.
Prints p50/p99 per variant (median over repeats) and the ratio to raw pykka.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors import Agent
from bench._common import pct, quiet
from strategies import BreakerPolicy
from supervisor import ChildSpec, Supervisor, start

REPEATS = int(os.environ.get("REPEATS", "5"))
N = int(os.environ.get("N", "20000"))


class RawEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


def sample(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    pc = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = pc()
        fn(i)
        out.append(pc() - t0)
    return pct(out, 0.5) / 1e3, pct(out, 0.99) / 1e3


def main() -> None:
    quiet()
    tree = Supervisor(
        "bench",
        children=[
            ChildSpec("deadline", Echo),
            ChildSpec("plain", Echo, message_timeout=None),
            ChildSpec("breaker", Echo, breaker=BreakerPolicy()),
        ],
    )
    ref = RawEcho.start()
    with start(tree) as system:
        variants: dict[str, Callable[[int], Any]] = {
            "raw pykka ref.ask(timeout=1.0)": lambda i: ref.ask(i, timeout=1.0),
            "hivekeeper ask (message deadline on)": lambda i: system.ask(
                "bench/deadline", i, timeout=1.0
            ),
            "hivekeeper ask (no message deadline)": lambda i: system.ask(
                "bench/plain", i, timeout=1.0
            ),
            "hivekeeper ask (with breaker)": lambda i: system.ask("bench/breaker", i, timeout=1.0),
        }
        for fn in variants.values():
            sample(fn, 2000)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for _ in range(REPEATS):
            for name, fn in variants.items():
                results[name].append(sample(fn, N))
    ref.stop()
    base = statistics.median(p50 for p50, _ in results["raw pykka ref.ask(timeout=1.0)"])
    base99 = statistics.median(p99 for _, p99 in results["raw pykka ref.ask(timeout=1.0)"])
    print(f"ask round trip, median of {REPEATS} x {N} asks")
    for name, runs in results.items():
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        print(
            f"  {name:40s} p50 {p50:7.1f} us  p99 {p99:7.1f} us   ratio p50 {p50 / base:4.2f}x  p99 {p99 / base99:4.2f}x"
        )


if __name__ == "__main__":
    main()
