"""Ask round trip: raw pykka vs hivekeeper, measured in one run, interleaved.

Run: python -m bench.ask_latency     (env: REPEATS=5 N=20000)
Variants: raw pykka ref.ask(msg, timeout=1.0) (the anchor); hivekeeper system.ask to an agent
with a message deadline, a circuit breaker and a fallback (the issue's target); with the
default ChildSpec (30 s message deadline armed); without a deadline.
Prints p50/p99 per variant (median over repeats) and the ratio to raw pykka.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors import Agent, Rule, RuleBasedAgent
from bench._common import pct, quiet
from bench._table import Row, main_for, ratio_row
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


class AsyncEcho(Agent):
    async def handle(self, message: Any) -> Any:
        return message


def sample(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    pc = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = pc()
        fn(i)
        out.append(pc() - t0)
    return pct(out, 0.5) / 1e3, pct(out, 0.99) / 1e3


class Stand(RuleBasedAgent):
    rules = (Rule(when=lambda m: True, reply=lambda m: "fallback"),)


FULL = "hivekeeper ask (deadline + breaker + fallback)"
TASK = "hivekeeper ask, task agent (deadline + breaker + fallback)"
RAW = "raw pykka ref.ask(timeout=1.0)"


def measure() -> dict[str, tuple[float, float]]:
    """p50/p99 in microseconds per variant: the median over REPEATS interleaved runs."""
    quiet()
    tree = Supervisor(
        "bench",
        children=[
            ChildSpec("full", Echo, breaker=BreakerPolicy(), fallback=Stand),
            ChildSpec("deadline", Echo),
            ChildSpec("plain", Echo, message_timeout=None),
            ChildSpec("task", AsyncEcho, isolation="task", breaker=BreakerPolicy(), fallback=Stand),
        ],
    )
    ref = RawEcho.start()
    with start(tree) as system:
        variants: dict[str, Callable[[int], Any]] = {
            RAW: lambda i: ref.ask(i, timeout=1.0),
            FULL: lambda i: system.ask("bench/full", i, timeout=1.0),
            "hivekeeper ask (message deadline only)": lambda i: system.ask(
                "bench/deadline", i, timeout=1.0
            ),
            "hivekeeper ask (no message deadline)": lambda i: system.ask(
                "bench/plain", i, timeout=1.0
            ),
            TASK: lambda i: system.ask("bench/task", i, timeout=1.0),
        }
        for fn in variants.values():
            sample(fn, 2000)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
        for _ in range(REPEATS):
            for name, fn in variants.items():
                results[name].append(sample(fn, N))
    ref.stop()
    return {
        name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for name, runs in results.items()
    }


def rows() -> list[Row]:
    got = measure()
    (full50, full99), (raw50, raw99) = got[FULL], got[RAW]
    task50, task99 = got[TASK]
    return [
        ratio_row("ask p50 (deadline + breaker + fallback)", full50, raw50, "us", 1.10),
        ratio_row("ask p99 (deadline + breaker + fallback)", full99, raw99, "us", 1.25),
        ratio_row("ask p50, task agent (same)", task50, raw50, "us", 1.10),
        ratio_row("ask p99, task agent (same)", task99, raw99, "us", 1.25),
    ]


def main() -> None:
    got = measure()
    base50, base99 = got[RAW]
    print(f"ask round trip, median of {REPEATS} x {N} asks")
    for name, (p50, p99) in got.items():
        print(
            f"  {name:48s} p50 {p50:7.1f} us  p99 {p99:7.1f} us"
            f"   ratio p50 {p50 / base50:4.2f}x  p99 {p99 / base99:4.2f}x"
        )


if __name__ == "__main__":
    if "--rows" in sys.argv[1:]:
        main_for(rows)
    else:
        main()
