"""Large trees: declaring, starting, asking health of and stopping N idle agents, against
raw pykka starting and stopping N actors in the same run.

Run: python -m bench.tree_scale      (env: SIZES=100,1000,10000)
Per size: declaration (building the Supervisor spec), start (start() until every agent has
run on_start), system.health(), shutdown; raw pykka: ThreadingActor.start() N times, then
stop each. Per-agent costs are printed so flatness across sizes can be read directly; the
flatness rows take each size's time above a one-agent tree's (the system's own start and
stop), over the agents.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import pykka

from actors import Agent
from bench._common import quiet, rss_mib
from bench._table import Row, main_for, per_agent, ratio_row, value_row
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start

SIZES = [int(s) for s in os.environ.get("SIZES", "100,1000,10000").split(",")]


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class RawEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


def hivekeeper(n: int) -> dict[str, float]:
    base = rss_mib()
    t0 = time.perf_counter()
    tree = Supervisor(
        "root", strategy=OneForOne(), children=[ChildSpec(f"a{i}", Echo) for i in range(n)]
    )
    t1 = time.perf_counter()
    system = start(tree, start_timeout=600.0)
    t2 = time.perf_counter()
    system.health()
    t3 = time.perf_counter()
    rss = rss_mib() - base
    system.shutdown(timeout=600.0)
    t4 = time.perf_counter()
    return {"declare": t1 - t0, "start": t2 - t1, "health": t3 - t2, "stop": t4 - t3, "rss": rss}


def raw(n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    refs = [RawEcho.start() for _ in range(n)]
    t1 = time.perf_counter()
    for ref in refs:
        ref.stop(block=False)
    for ref in refs:
        ref.actor_stopped.wait(600.0)
    t2 = time.perf_counter()
    return {"start": t1 - t0, "stop": t2 - t1}


def measure() -> tuple[dict[str, float], list[tuple[int, dict[str, float], dict[str, float]]]]:
    """A one-agent tree (the fixed cost of a system), then each size, raw pykka alongside."""
    quiet()
    raw(100)  # warm-up: the first threads of a process cost more
    one = typical(1)
    return one, [(n, typical(n), raw(n)) for n in SIZES]


def typical(n: int) -> dict[str, float]:
    """hivekeeper(n), each measure the median of enough runs to add up to 10,000 agents or
    more, at most 5 (a tree of 100 starts in tens of milliseconds: one run is mostly noise)."""
    runs = [hivekeeper(n) for _ in range(max(1, min(5, 10_000 // n)))]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def rows() -> list[Row]:
    one, runs = measure()
    print_scaling(runs)
    n, h, r = runs[-1]
    per_start = [per_agent(hk["start"], size, one["start"]) for size, hk, _ in runs]
    per_stop = [per_agent(hk["stop"], size, one["stop"]) for size, hk, _ in runs]
    flat = 1.5
    out = [
        value_row(f"declare {n:,} agents", h["declare"], "s", 0.2),
        value_row(f"start {n:,} agents", h["start"], "s", 1.5, raw=r["start"]),
        ratio_row(f"start {n:,} agents vs raw pykka", h["start"], r["start"], "s", 0.5),
        value_row(f"stop {n:,} agents", h["stop"], "s", 1.5, raw=r["stop"]),
        value_row(f"RSS of {n:,} idle agents", h["rss"], "MiB", 1024),
    ]
    for what, per in (("start", per_start), ("stop", per_stop)):
        spread = max(per) / min(per)
        sizes = f"{runs[0][0]:,}..{n:,}"
        out.append(
            Row(f"per-agent {what} cost, max/min over {sizes}", spread, None, "x",
                f"<= {flat}x", spread <= flat)
        )  # fmt: skip
    return out


def print_scaling(runs: list[tuple[int, dict[str, float], dict[str, float]]]) -> None:
    print(f"trees of idle agents: {os.cpu_count()} cores")
    print(
        "  agents  declare s  start s (per agent)   raw pykka start s  ratio  health ms"
        "  stop s (per agent)   raw stop s  RSS MiB"
    )
    for n, h, r in runs:
        print(
            f"  {n:6d}  {h['declare']:9.3f}  {h['start']:7.2f} ({h['start'] / n * 1e3:5.2f} ms)"
            f"   {r['start']:17.2f}  {h['start'] / r['start']:5.2f}  {h['health'] * 1e3:9.0f}"
            f"  {h['stop']:6.2f} ({h['stop'] / n * 1e3:5.2f} ms)   {r['stop']:10.2f}  {h['rss']:7.0f}"
        )


def main() -> None:
    print_scaling(measure()[1])


if __name__ == "__main__":
    if "--rows" in sys.argv[1:]:
        main_for(rows)
    else:
        main()
