"""Inspecting large trees: system.health() and render_metrics() (what /metrics answers) on
trees of idle thread agents. Neither asks any agent anything; both read what the runtime keeps.

Run: python -m bench.inspect_scale      (env: SIZES=1000,10000  REPEATS=20)
Per size: one tree of N idle agents is started, then health() and render_metrics() are each
called once (the first call: every entry and family is built) and then timed REPEATS times,
whose p50 / p99 are printed. Later calls reuse the entries of agents that did not change, as
a scrape every few seconds of a mostly idle tree does. Target (issue 12, target 5): p50 under
50 ms at 10,000 agents. The load average is printed: the machine is shared.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from actors import Agent
from bench._common import pct, quiet
from bench._table import Row, main_for, value_row
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, System, render_metrics, start

SIZES = [int(s) for s in os.environ.get("SIZES", "1000,10000").split(",")]
REPEATS = int(os.environ.get("REPEATS", "20"))
TARGET_MS = 50.0


class Idle(Agent):
    def handle(self, message: Any) -> Any:
        return message


def idle_tree(n: int) -> System:
    """A started tree of n idle thread agents under one supervisor."""
    tree = Supervisor(
        "root", strategy=OneForOne(), children=[ChildSpec(f"a{i}", Idle) for i in range(n)]
    )
    return start(tree, start_timeout=600.0)


def timed(call: Callable[[], object]) -> tuple[float, list[float]]:
    """(the first call, the REPEATS calls after it), in seconds."""
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    samples = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return first, samples


def rows() -> list[Row]:
    """The table's rows (python -m bench): p50 of each at the largest size."""
    quiet()
    n = max(SIZES)
    system = idle_tree(n)
    try:
        health = pct(timed(system.health)[1], 0.5) * 1e3
        metrics = pct(timed(functools.partial(render_metrics, system))[1], 0.5) * 1e3
    finally:
        system.shutdown(timeout=600.0)
    return [
        value_row(f"health() on {n:,} agents, p50", health, "ms", TARGET_MS),
        value_row(f"/metrics on {n:,} agents, p50", metrics, "ms", TARGET_MS),
    ]


def main() -> None:
    quiet()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"inspecting trees of idle thread agents: {os.cpu_count()} cores, load {load}")
    print("  agents  call                first ms   p50 ms   p99 ms  target")
    for n in SIZES:
        system = idle_tree(n)
        try:
            results = {
                "health()": timed(system.health),
                "render_metrics()": timed(functools.partial(render_metrics, system)),
            }
        finally:
            system.shutdown(timeout=600.0)
        for name, (first, samples) in results.items():
            p50, p99 = pct(samples, 0.5) * 1e3, pct(samples, 0.99) * 1e3
            verdict = f"< {TARGET_MS:.0f} ms: {'pass' if p50 < TARGET_MS else 'FAIL'}"
            print(
                f"  {n:6d}  {name:18s}  {first * 1e3:8.1f}  {p50:7.1f}  {p99:7.1f}"
                f"  {verdict if n >= 10_000 else ''}"
            )


if __name__ == "__main__":
    if "--rows" in sys.argv[1:]:
        main_for(rows)
    else:
        main()
