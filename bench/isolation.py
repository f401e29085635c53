"""Process isolation against thread isolation: what a worker process costs and what it buys.

Run: python -m bench.isolation     (env: N=1000 REPEATS=3 MAX_AGENTS=200 ASKS=2000 HANGS=10
                                     CRASHES=30)
For each mode (ChildSpec(isolation="thread") and isolation="process"), in one run:
  1. ask round trip p50/p99 of an echo agent (REPEATS x ASKS asks for process mode, 5x as many
     for thread mode), interleaved with raw pykka ref.ask on an echo actor (the anchor);
  2. hung-agent recovery: a handler sleeps 60 s under message_timeout=0.2; the next ask is
     sent as soon as the TIMEOUT answer arrives; X = its answer time - the deadline (0.2 s after
     the hung ask was sent), p50 over HANGS repetitions (target: deadline + 50 ms);
  3. crash -> replacement answering: tell "boom" (the handler raises), ask at once; time until
     the replacement answers, p50 over CRASHES repetitions, with raw pykka's naive restart
     (on_failure -> start a new actor -> first ask) for reference;
  4. idle memory per agent: N idle thread agents, N // 20 idle process agents; (RSS of this
     process + the RSS of every worker, from health's rss_mb) / agents;
  5. process trees of 50, 100, 200, ... agents up to MAX_AGENTS, stopping at the first that
     fails, takes over 60 s to start, or would leave less than 4 GiB MemAvailable.
Rows "process*" in 2 and 3: the agent class from the importable module (pickled by reference,
so each new worker imports bench.isolation), against "process" where it crosses by value.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pykka

from actors import Agent, ExecutionStatus
from bench._common import pct, quiet, rss_mib
from strategies import OneForOne
from supervisor import ChildSpec, HivekeeperError, Supervisor, System, start

N = int(os.environ.get("N", "1000"))
REPEATS = int(os.environ.get("REPEATS", "3"))
MAX_AGENTS = int(os.environ.get("MAX_AGENTS", "200"))
ASKS = int(os.environ.get("ASKS", "2000"))
HANGS = int(os.environ.get("HANGS", "10"))
CRASHES = int(os.environ.get("CRASHES", "30"))
MODES = ("thread", "process")
DEADLINE = 0.2
TARGET_MS = 50.0
START_LIMIT_S = 60.0
MEM_FLOOR_MIB = 4 * 1024
CRASH_PAUSE_S = 0.1  # between crashes, so the replacement's worker comes from a warm spare
STAR = (
    "  (process: agent class in __main__, shipped to the worker by value; process*: the same "
    "class from the\n   importable bench.isolation, which each fresh worker imports before "
    "building the agent, like an app's agent module)"
)
logging.getLogger("pykka").setLevel(logging.CRITICAL)


# -- agents -----------------------------------------------------------------------------------


class RawEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class Hangs(Agent):
    def handle(self, message: Any) -> Any:
        if message == "hang":
            time.sleep(60.0)
        return message


class Boom(Agent):
    """Answers with its instance's uid, so an answer from the replacement can be told apart."""

    def __init__(self) -> None:
        self.uid = uuid.uuid4().hex

    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        return self.uid


class RawBoom(pykka.ThreadingActor):
    def __init__(self, events: queue.Queue[str]) -> None:
        super().__init__()
        self.events = events

    def on_failure(self, *exc: Any) -> None:
        self.events.put("crashed")

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        return message


def tree(children: list[ChildSpec]) -> Supervisor:
    return Supervisor(
        "bench", strategy=OneForOne(max_restarts=100_000, within_seconds=1.0), children=children
    )


# -- helpers ----------------------------------------------------------------------------------


def sample(fn: Callable[[int], Any], n: int) -> tuple[float, float]:
    pc = time.perf_counter_ns
    out = []
    for i in range(n):
        t0 = pc()
        fn(i)
        out.append(pc() - t0)
    return pct(out, 0.5) / 1e3, pct(out, 0.99) / 1e3


def mem_available_mib() -> float:
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pss_mib(pid: int) -> float | None:
    """Proportional set size: a worker's pages shared with the fork server (and its siblings)
    counted in shares, unlike RSS, which counts them whole in every worker."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def workers(system: System) -> list[tuple[int, float, float]]:
    """(pid, rss_mb, pss_mb) of every process agent's worker (the warm spare is not an agent)."""
    out = []
    for actor in system.health().actors.values():
        if actor.isolation == "process" and actor.pid is not None:
            pss = pss_mib(actor.pid)
            out.append((actor.pid, actor.rss_mb or 0.0, pss if pss is not None else 0.0))
    return out


def checked(result: Any) -> Any:
    if result.status is not ExecutionStatus.SUCCESS:
        msg = f"ask failed: {result.status} {result.reason} {result.error}"
        raise RuntimeError(msg)
    return result.data


# -- 1. ask round trip ------------------------------------------------------------------------


def ask_latency(modes: tuple[str, ...] = MODES) -> dict[str, tuple[float, float, float, float]]:
    """mode -> (p50, p99, raw p50, raw p99), µs; raw pykka interleaved with each mode."""
    out = {}
    ref = RawEcho.start()
    try:
        for mode in modes:
            n = 5 * ASKS if mode == "thread" else ASKS
            spec = ChildSpec("echo", Echo, isolation=mode)
            with start(tree([spec])) as system:
                raw_fn: Callable[[int], Any] = lambda i: ref.ask(i, timeout=1.0)  # noqa: E731
                hk_fn: Callable[[int], Any] = lambda i: system.ask("bench/echo", i, timeout=1.0)  # noqa: E731
                sample(raw_fn, min(n, 2000))
                sample(hk_fn, min(n, 2000))
                raw, hk = [], []
                for _ in range(REPEATS):
                    raw.append(sample(raw_fn, n))
                    hk.append(sample(hk_fn, n))
            out[mode] = (
                statistics.median(r[0] for r in hk),
                statistics.median(r[1] for r in hk),
                statistics.median(r[0] for r in raw),
                statistics.median(r[1] for r in raw),
            )
    finally:
        ref.stop()
    return out


# -- 2. hung agent ----------------------------------------------------------------------------


def hung_recovery(
    mode: str, factory: type[Agent] = Hangs, pause: float = 0.0, repetitions: int = HANGS
) -> tuple[list[float], list[float], list[float], dict[str, int]]:
    """(X, TIMEOUT lateness, next ask) in ms per repetition, and the kills health counted."""
    spec = ChildSpec(
        "hangs",
        factory,
        isolation=mode,
        message_timeout=DEADLINE,
        max_abandoned=HANGS + 3,  # thread mode: every hung thread sleeps on for 60 s
    )
    xs, late, nxt = [], [], []
    with start(tree([spec])) as system:
        for i in range(3):
            checked(system.ask("bench/hangs", i, timeout=5.0))
        for _ in range(repetitions):
            time.sleep(pause)  # > 0: the pool's warm spare is ready again
            t0 = time.perf_counter()
            timed_out = system.ask("bench/hangs", "hang", timeout=5.0)
            t1 = time.perf_counter()
            answer = system.ask("bench/hangs", "next", timeout=5.0)
            t2 = time.perf_counter()
            if timed_out.status is not ExecutionStatus.TIMEOUT:
                msg = f"the hung ask was answered {timed_out.status}, not TIMEOUT"
                raise RuntimeError(msg)
            checked(answer)
            deadline = t0 + DEADLINE
            xs.append((t2 - deadline) * 1e3)
            late.append((t1 - deadline) * 1e3)
            nxt.append((t2 - t1) * 1e3)
        kills = dict(system.health().actors["bench/hangs"].kills)
    return xs, late, nxt, kills


# -- 3. crash -> replacement answering ----------------------------------------------------------


def crash_recovery(
    mode: str, factory: type[Agent] = Boom, pause: float = CRASH_PAUSE_S, repetitions: int = CRASHES
) -> list[float]:
    out = []
    with start(tree([ChildSpec("boom", factory, isolation=mode)])) as system:
        uid = checked(system.ask("bench/boom", "who", timeout=5.0))
        for _ in range(repetitions):
            time.sleep(pause)
            t0 = time.perf_counter()
            system.tell("bench/boom", "boom")
            new = checked(system.ask("bench/boom", "who", timeout=5.0))
            out.append((time.perf_counter() - t0) * 1e3)
            if new == uid:
                msg = "the ask after the crash was answered by the crashed instance"
                raise RuntimeError(msg)
            uid = new
    return out


def raw_crash_recovery() -> list[float]:
    events: queue.Queue[str] = queue.Queue()
    ref = RawBoom.start(events)
    out = []
    try:
        for _ in range(CRASHES):
            time.sleep(CRASH_PAUSE_S)
            t0 = time.perf_counter()
            ref.tell("boom")
            events.get(timeout=5.0)
            ref = RawBoom.start(events)
            ref.ask("who", timeout=5.0)
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        ref.stop()
    return out


# -- 4. idle memory ---------------------------------------------------------------------------


def idle_memory(mode: str, n: int) -> dict[str, float]:
    base = rss_mib()
    specs = [ChildSpec(f"a{i}", Echo, isolation=mode) for i in range(n)]
    with start(tree(specs), start_timeout=START_LIMIT_S) as system:
        time.sleep(0.5)  # let the spare refill settle
        own = rss_mib()
        ws = workers(system)
    rss_workers = sum(w[1] for w in ws)
    pss_workers = sum(w[2] for w in ws)
    return {
        "n": n,
        "base": base,
        "own": own,
        "workers_rss": rss_workers,
        "workers_pss": pss_workers,
        "per_agent": (own + rss_workers) / n,
        "per_agent_marginal": (own - base + rss_workers) / n,
        "per_agent_pss": (own - base + pss_workers) / n,
    }


# -- 5. the largest process tree ----------------------------------------------------------------


def tree_sizes() -> list[int]:
    sizes, size = [], 50
    while size <= MAX_AGENTS:
        sizes.append(size)
        size *= 2
    return sizes or [MAX_AGENTS]


def largest_tree() -> tuple[list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    per_worker_mib: float | None = None  # from the last tree: PSS + this process's growth
    for size in tree_sizes():
        avail = mem_available_mib()
        if per_worker_mib is not None and avail - size * per_worker_mib < MEM_FLOOR_MIB:
            return rows, (
                f"stopped before {size}: MemAvailable {avail:.0f} MiB - {size} x "
                f"{per_worker_mib:.1f} MiB would leave less than {MEM_FLOOR_MIB} MiB"
            )
        specs = [ChildSpec(f"a{i}", Echo, isolation="process") for i in range(size)]
        base, fds0 = rss_mib(), open_fds()
        t0 = time.perf_counter()
        try:
            system = start(tree(specs), start_timeout=START_LIMIT_S)
        except HivekeeperError as exc:
            return rows, f"{size} failed to start: {exc}"
        with system:
            started = time.perf_counter() - t0
            for i in range(size):
                checked(system.ask(f"bench/a{i}", i, timeout=10.0))
            answered = time.perf_counter() - t0
            time.sleep(0.5)
            ws = workers(system)
            own, fds = rss_mib(), open_fds()
            avail_after = mem_available_mib()
            t1 = time.perf_counter()
        stopped = time.perf_counter() - t1
        rss_w, pss_w = sum(w[1] for w in ws), sum(w[2] for w in ws)
        per_worker_mib = (own - base + pss_w) / size
        rows.append(
            {
                "size": size,
                "workers": len(ws),
                "start": started,
                "answered": answered,
                "stop": stopped,
                "own": own,
                "rss": own + rss_w,
                "pss": own + pss_w,
                "avail_drop": avail - avail_after,
                "fds": (fds - fds0) / size,
                "per_worker": per_worker_mib,
            }
        )
        if started > START_LIMIT_S:
            return rows, f"{size} took {started:.1f} s to start (> {START_LIMIT_S:.0f} s)"
    return rows, f"all sizes up to MAX_AGENTS={MAX_AGENTS} started"


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    quiet()
    t_begin = time.perf_counter()
    # warm up: the fork server starts on first use; keep that out of every measurement
    with start(tree([ChildSpec("w", Echo, isolation="process")])) as system:
        checked(system.ask("bench/w", 0, timeout=10.0))
    print(
        f"process isolation vs thread isolation: {os.cpu_count()} cores, "
        f"MemAvailable {mem_available_mib():.0f} MiB"
    )

    asks = ask_latency()
    # Run as a script, the agent classes live in __main__ and cross to a worker by value. The
    # same classes from the importable module cross by reference: a fresh worker then imports
    # bench.isolation (and what it imports beyond the fork server's preload) before it can
    # build the agent, as it would an application's agent module. Row "process*".
    here, imported = sys.modules[__name__], importlib.import_module("bench.isolation")
    variants = [("thread", "thread", here), ("process", "process", here)]
    if imported is not here:
        variants.append(("process*", "process", imported))
    print()
    print(f"1. ask round trip (echo agent), median of {REPEATS} repeats, raw pykka in the same run")
    for mode in MODES:
        p50, p99, r50, r99 = asks[mode]
        n = ASKS if mode == "process" else 5 * ASKS
        print(
            f"  {mode:7s} ({n:6d} asks/repeat) p50 {p50:7.1f} us  p99 {p99:7.1f} us   "
            f"raw pykka p50 {r50:6.1f} us  p99 {r99:7.1f} us   "
            f"ratio p50 {p50 / r50:4.2f}x  p99 {p99 / r99:4.2f}x"
        )

    print()
    print(
        f"2. hung agent (handler sleeps 60 s, message_timeout={DEADLINE}): deadline -> "
        f"replacement answers, {HANGS} repetitions"
    )
    for label, mode, module in variants:
        xs, late, nxt, kills = hung_recovery(mode, module.Hangs)
        x50 = pct(xs, 0.5)
        verdict = "meets" if x50 <= TARGET_MS else "MISSES"
        print(
            f"  {label:8s} deadline + {x50:6.1f} ms (p50; max {max(xs):6.1f} ms)  "
            f"{verdict} the <= {TARGET_MS:.0f} ms target   "
            f"[TIMEOUT answered at deadline + {pct(late, 0.5):5.1f} ms, "
            f"next ask {pct(nxt, 0.5):5.1f} ms; kills {kills or '{}'}]"
        )
    if len(variants) > 2:
        print(STAR)

    print()
    print(
        f"3. crash -> replacement answering its first ask, {CRASHES} repetitions "
        f"({CRASH_PAUSE_S * 1e3:.0f} ms apart)"
    )
    raw = raw_crash_recovery()
    r50, r99 = pct(raw, 0.5), pct(raw, 0.99)
    print(f"  {'raw pykka naive restart':26s} p50 {r50:7.2f} ms  max {max(raw):7.2f} ms")
    for label, mode, module in variants:
        got = crash_recovery(mode, module.Boom)
        print(
            f"  {'hivekeeper ' + label:26s} p50 {pct(got, 0.5):7.2f} ms  max {max(got):7.2f} ms"
            f"   ratio p50 {pct(got, 0.5) / r50:5.2f}x"
        )
    if len(variants) > 2:
        print("  (process*: as in 2)")

    print()
    print("4. idle memory per agent: (RSS of this process + RSS of every worker) / agents")
    for mode, n in (("thread", N), ("process", max(1, N // 20))):
        m = idle_memory(mode, n)
        extra = (
            f"; workers' RSS {m['workers_rss']:7.1f} MiB, PSS {m['workers_pss']:6.1f} MiB, "
            f"marginal with PSS {m['per_agent_pss']:5.2f} MiB/agent"
            if mode == "process"
            else ""
        )
        print(
            f"  {mode:7s} {n:5d} agents: {m['per_agent']:7.3f} MiB/agent "
            f"(this process {m['base']:.1f} -> {m['own']:.1f} MiB; marginal "
            f"{m['per_agent_marginal']:6.3f} MiB/agent{extra})"
        )

    print()
    print(
        f"5. largest process-mode tree (sizes 50, 100, ... up to MAX_AGENTS={MAX_AGENTS}; "
        f"stop past {START_LIMIT_S:.0f} s to start or under {MEM_FLOOR_MIB} MiB MemAvailable)"
    )
    rows, why = largest_tree()
    print(
        f"  {'agents':>6s} {'start s':>8s} {'all answered s':>15s} {'stop s':>7s} "
        f"{'total RSS MiB':>14s} {'total PSS MiB':>14s} {'MemAvail drop':>14s} "
        f"{'MiB/worker':>11s} {'fds/worker':>11s}"
    )
    for r in rows:
        print(
            f"  {r['size']:6d} {r['start']:8.2f} {r['answered']:15.2f} {r['stop']:7.2f} "
            f"{r['rss']:14.1f} {r['pss']:14.1f} {r['avail_drop']:14.1f} "
            f"{r['per_worker']:11.2f} {r['fds']:11.2f}"
        )
    print(f"  {why}")
    if rows:
        last = rows[-1]
        per_start = last["start"] / last["size"]
        by_time = int(START_LIMIT_S / per_start)
        avail = mem_available_mib()
        by_mem = int((avail - MEM_FLOOR_MIB) / last["per_worker"])
        by_rss = int((avail - MEM_FLOOR_MIB) / ((last["rss"] - last["own"]) / last["size"]))
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        by_fds = int(nofile / last["fds"]) if last["fds"] > 0 else 0
        print(
            f"  limits: start {per_start * 1e3:.1f} ms/worker on {os.cpu_count()} cores -> "
            f"~{by_time} workers in {START_LIMIT_S:.0f} s; memory {last['per_worker']:.1f} MiB/worker"
            f" (PSS) -> ~{by_mem} workers above {MEM_FLOOR_MIB} MiB free (~{by_rss} if every "
            f"worker's RSS were its own); {last['fds']:.0f} fds/worker, RLIMIT_NOFILE {nofile} "
            f"-> ~{by_fds}; plus one host thread per agent here"
        )
    print()
    print(f"total run time {time.perf_counter() - t_begin:.1f} s")


if __name__ == "__main__":
    main()
