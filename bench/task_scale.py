"""Lightweight agents (ChildSpec(isolation="task")): many agents without a thread each.

Run: python -m bench.task_scale      (env: TASK_AGENTS=100000, SIZES=100,1000,10000)
- 100, 1,000 and 10,000 declared task agents: start and stop, per agent, against raw pykka
  starting and stopping as many ThreadingActors in the same run;
- TASK_AGENTS (100,000) of them in one process: start, RSS, stop;
- 10,000 of them answering one ask each, all at once;
- start_child of one task agent: the round trip of one call (p50 over 2,000, one after the
  other), and what each costs when 32 callers start children at once;
- start_child_async from one event loop (an async server, one agent per conversation), 1,000
  awaits in flight at a time, 10,000 children: the time each costs.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import sys
import threading
import time
from typing import Any

from actors import Agent
from bench._common import quiet, rss_mib
from bench._table import Row, main_for, per_agent, ratio_row, value_row
from bench.tree_scale import raw
from strategies import OneForOne
from supervisor import ChildSpec, ExecutionStatus, Supervisor, start

SIZES = [int(s) for s in os.environ.get("SIZES", "100,1000,10000").split(",")]
MANY = int(os.environ.get("TASK_AGENTS", "100000"))
START_CHILD_CALLS = 2000
CALLERS = 32
IN_FLIGHT = 1000
ASYNC_STARTS = 10_000


class AsyncEcho(Agent):
    async def handle(self, message: Any) -> Any:
        return message


def _tree(n: int) -> Supervisor:
    children = [ChildSpec(f"a{i}", AsyncEcho, isolation="task") for i in range(n)]
    return Supervisor("root", strategy=OneForOne(), children=children)


def tree_of(n: int, answer_all: bool = False) -> dict[str, float]:
    base = rss_mib()
    t0 = time.perf_counter()
    tree = _tree(n)
    t1 = time.perf_counter()
    system = start(tree, start_timeout=600.0)
    t2 = time.perf_counter()
    out = {"declare": t1 - t0, "start": t2 - t1, "rss": rss_mib() - base}
    if answer_all:
        t3 = time.perf_counter()
        pending = [system.ask_future(f"root/a{i}", i, timeout=600.0) for i in range(n)]
        ok = sum(p.result().status is ExecutionStatus.SUCCESS for p in pending)
        out["answer"] = time.perf_counter() - t3
        out["answered"] = ok
    t4 = time.perf_counter()
    system.shutdown(timeout=600.0)
    out["stop"] = time.perf_counter() - t4
    return out


def typical(n: int) -> dict[str, float]:
    """tree_of(n), each measure the median of enough runs to add up to 10,000 agents or
    more (a tree of 100 starts in milliseconds: one run is mostly noise)."""
    runs = [tree_of(n) for _ in range(max(1, min(25, 10_000 // n)))]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def start_child_costs() -> tuple[float, float]:
    """(p50 of one start_child round trip, per-child cost with CALLERS starting at once), µs."""
    system = start(Supervisor("root", strategy=OneForOne()))
    try:
        laps = []
        for i in range(START_CHILD_CALLS):
            t = time.perf_counter()
            system.start_child("root", ChildSpec(f"s{i}", AsyncEcho, isolation="task"))
            laps.append(time.perf_counter() - t)
        each = START_CHILD_CALLS // CALLERS

        def caller(k: int) -> None:
            for i in range(each):
                spec = ChildSpec(f"p{k}-{i}", AsyncEcho, isolation="task")
                system.start_child("root", spec)

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(CALLERS)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        amortised = (time.perf_counter() - t) / (each * CALLERS)
    finally:
        system.shutdown(timeout=600.0)
    return statistics.median(laps) * 1e6, amortised * 1e6


def start_child_async_cost() -> tuple[float, float]:
    """(µs each of ASYNC_STARTS start_child_async awaited from one loop, IN_FLIGHT at a time;
    of which µs each in the cyclic garbage collector, timed by gc.callbacks)."""
    system = start(Supervisor("root", strategy=OneForOne()))
    in_gc = [0.0, 0.0]  # total, when the running pass began

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            in_gc[1] = time.perf_counter()
        else:
            in_gc[0] += time.perf_counter() - in_gc[1]

    async def burst() -> float:
        t = time.perf_counter()
        for first in range(0, ASYNC_STARTS, IN_FLIGHT):
            specs = (ChildSpec(f"c{i}", AsyncEcho, isolation="task")
                     for i in range(first, first + IN_FLIGHT))  # fmt: skip
            await asyncio.gather(*(system.start_child_async("root", s) for s in specs))
        return (time.perf_counter() - t) / ASYNC_STARTS

    gc.callbacks.append(timed)
    try:
        each = asyncio.run(burst())
    finally:
        gc.callbacks.remove(timed)
        system.shutdown(timeout=600.0)
    return each * 1e6, in_gc[0] / ASYNC_STARTS * 1e6


def rows() -> list[Row]:
    quiet()
    raw(100)  # warm-up: the first threads of a process cost more
    one = typical(1)  # the system's own cost: its loops, its timer thread
    scaling = [(n, typical(n), raw(n)) for n in SIZES]
    print_scaling(scaling)
    n, h, r = scaling[-1]
    many = tree_of(MANY)
    print(
        f"{MANY:,} task agents: declare {many['declare']:.2f} s, start {many['start']:.2f} s,"
        f" stop {many['stop']:.2f} s, RSS {many['rss']:.0f} MiB"
    )
    concurrent = tree_of(10_000, answer_all=True)
    alone, amortised = start_child_costs()
    awaited, collecting = start_child_async_cost()
    print(f"start_child of a task agent: p50 {alone:.0f} us alone, {amortised:.0f} us each "
          f"with {CALLERS} callers, {awaited:.0f} us each awaited {IN_FLIGHT:,} at a time "
          f"({collecting:.0f} us of it in the garbage collector)")  # fmt: skip
    per_start = [per_agent(hk["start"], size, one["start"]) for size, hk, _ in scaling]
    per_stop = [per_agent(hk["stop"], size, one["stop"]) for size, hk, _ in scaling]
    sizes = f"{scaling[0][0]:,}..{n:,}"
    flat = [
        Row(f"per-task-agent {what} cost, max/min over {sizes}", max(per) / min(per), None,
            "x", "<= 1.5x", max(per) / min(per) <= 1.5)
        for what, per in (("start", per_start), ("stop", per_stop))
    ]  # fmt: skip
    answered = concurrent["answered"]
    return [
        value_row(f"start {n:,} task agents", h["start"], "s", 1.5, raw=r["start"]),
        ratio_row(f"start {n:,} task agents vs raw pykka", h["start"], r["start"], "s", 0.5),
        value_row(f"stop {n:,} task agents", h["stop"], "s", 1.5, raw=r["stop"]),
        *flat,
        value_row(f"start {MANY:,} task agents", many["start"], "s", 5.0),
        value_row(f"RSS of {MANY:,} idle task agents", many["rss"], "MiB", 1024),
        value_row(f"stop {MANY:,} task agents", many["stop"], "s", None),
        Row("10,000 task agents answering at once (s, all answered)", concurrent["answer"],
            None, "s", "all 10,000 answer", answered == 10_000),
        value_row("start_child of one task agent, p50 round trip", alone, "us", 50),
        value_row(f"start_child of a task agent, {CALLERS} callers at once, each", amortised,
                  "us", None),
        value_row(f"start_child_async of a task agent, {IN_FLIGHT:,} in flight, each", awaited,
                  "us", 50),
    ]  # fmt: skip


def print_scaling(runs: list[tuple[int, dict[str, float], dict[str, float]]]) -> None:
    print(f"trees of idle task agents: {os.cpu_count()} cores")
    print("  agents  declare s  start s (per agent)   raw pykka start s  ratio"
          "  stop s (per agent)   raw stop s  RSS MiB")  # fmt: skip
    for n, h, r in runs:
        print(
            f"  {n:6d}  {h['declare']:9.3f}  {h['start']:7.3f} ({h['start'] / n * 1e6:5.0f} us)"
            f"   {r['start']:17.2f}  {h['start'] / r['start']:5.2f}"
            f"  {h['stop']:6.3f} ({h['stop'] / n * 1e6:5.0f} us)   {r['stop']:10.2f}"
            f"  {h['rss']:7.0f}"
        )


def main() -> None:
    for row in rows():
        print(row)


if __name__ == "__main__":
    if "--rows" in sys.argv[1:]:
        main_for(rows)
    else:
        main()
