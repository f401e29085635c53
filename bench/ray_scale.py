"""Ray agents (ChildSpec(isolation="ray")) against thread and process agents, in one run.

Run: python -m bench.ray_scale     (needs the ray extra; env: ASKS=2000 REPEATS=3 HANGS=10
                                     CRASHES=30 RAY_MAX_AGENTS=160)
  1. ask round trip p50/p99 of an echo agent per mode (thread, process, ray), each as a ratio
     to raw pykka ref.ask measured interleaved with it;
  2. hung agent in Ray mode: a handler sleeps 60 s under message_timeout=0.2; deadline ->
     replacement answering (the actor is ray.kill()ed; a warm spare takes over);
  3. crash -> replacement answering, per mode, with raw pykka's naive restart for reference;
  4. how many Ray agents a local Ray on this machine holds: trees of 10, 20, 40, ... agents up
     to RAY_MAX_AGENTS, stopping at the first that fails, takes over 60 s to start, or would
     leave less than 4 GiB MemAvailable.
The local Ray is started once, before anything is measured (its start is printed apart).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from bench import isolation as iso
from bench._common import pct, quiet
from supervisor import ChildSpec, start

RAY_MAX_AGENTS = int(os.environ.get("RAY_MAX_AGENTS", "160"))
RAY_PAUSE_S = 2.0  # a Ray actor takes ~0.6 s to start here: the spare is ready after this
RAY_REPEATS = 10
MODES = ("thread", "process", "ray")


def ray_sizes() -> list[int]:
    sizes, n = [], 10
    while n <= RAY_MAX_AGENTS:
        sizes.append(n)
        n *= 2
    return sizes


def ray_capacity() -> tuple[list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    for size in ray_sizes():
        avail = iso.mem_available_mib()
        specs = [ChildSpec(f"a{i}", iso.Echo, isolation="ray") for i in range(size)]
        t0 = time.perf_counter()
        try:
            system = start(iso.tree(specs), start_timeout=iso.START_LIMIT_S)
        except Exception as exc:  # noqa: BLE001 - the limit is what we are looking for
            return rows, f"{size} failed to start: {str(exc).splitlines()[0][:120]}"
        with system:
            started = time.perf_counter() - t0
            for i in range(size):
                iso.checked(system.ask(f"bench/a{i}", i, timeout=30.0))
            answered = time.perf_counter() - t0
            time.sleep(1.0)
            rss = sum(a.rss_mb or 0.0 for a in system.health().actors.values())
            drop = avail - iso.mem_available_mib()
            t1 = time.perf_counter()
        rows.append(
            {"size": size, "start": started, "answered": answered,
             "stop": time.perf_counter() - t1, "rss": rss, "drop": drop}
        )  # fmt: skip
        if iso.mem_available_mib() < 2 * drop + 4096:  # the next size doubles it
            return rows, f"stopped at {size}: the next size would leave < 4 GiB MemAvailable"
    return rows, f"all sizes up to RAY_MAX_AGENTS={RAY_MAX_AGENTS} started"


def main() -> None:
    import ray  # noqa: PLC0415 - the ray extra, needed by this benchmark only

    quiet()
    logging.getLogger("ray").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    from supervisor.hosts._ray_session import local_init_options  # noqa: PLC0415

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(**local_init_options(), log_to_driver=False)
    ray_start = time.perf_counter() - t0
    # warm up every mode once: the fork server and Ray's first worker start are not measured
    for mode in MODES:
        with start(iso.tree([ChildSpec("w", iso.Echo, isolation=mode)])) as system:
            iso.checked(system.ask("bench/w", 0, timeout=60.0))
    print(f"Ray agents vs thread and process agents: {os.cpu_count()} cores, Ray {ray.__version__}, "
          f"local ray.init {ray_start:.1f} s")  # fmt: skip

    asks = iso.ask_latency(MODES)
    print()
    print(
        f"1. ask round trip (echo agent), median of {iso.REPEATS} repeats, raw pykka in the same run"
    )
    for mode in MODES:
        p50, p99, r50, r99 = asks[mode]
        print(f"  {mode:7s} p50 {p50:8.1f} us  p99 {p99:8.1f} us   raw pykka p50 {r50:6.1f} us"
              f"  p99 {r99:7.1f} us   ratio p50 {p50 / r50:6.2f}x  p99 {p99 / r99:6.2f}x")  # fmt: skip

    print()
    print(f"2. hung agent (sleeps 60 s, message_timeout={iso.DEADLINE}): deadline -> replacement "
          f"answers, {iso.HANGS} repetitions")  # fmt: skip
    runs = [(m, m, 0.0, iso.HANGS) for m in MODES]
    runs.append(("ray*", "ray", RAY_PAUSE_S, RAY_REPEATS))
    for label, mode, pause, reps in runs:
        xs, late, nxt, kills = iso.hung_recovery(mode, iso.Hangs, pause, reps)
        print(f"  {label:7s} deadline + {pct(xs, 0.5):7.1f} ms (p50; max {max(xs):7.1f} ms)  "
              f"[TIMEOUT at deadline + {pct(late, 0.5):5.1f} ms, next ask {pct(nxt, 0.5):6.1f} ms;"
              f" kills {kills or '{}'}]")  # fmt: skip

    print(f"  (ray*: {RAY_PAUSE_S:.0f} s between hangs, so a warm spare actor is ready; the others "
          "back to back)")  # fmt: skip

    print()
    print(f"3. crash -> replacement answering its first ask, {iso.CRASHES} repetitions "
          f"({iso.CRASH_PAUSE_S * 1e3:.0f} ms apart; ray*: {RAY_REPEATS}, {RAY_PAUSE_S:.0f} s apart)")  # fmt: skip
    raw = iso.raw_crash_recovery()
    r50 = pct(raw, 0.5)
    print(f"  {'raw pykka naive restart':24s} p50 {r50:8.2f} ms")
    crash_runs = [(m, m, iso.CRASH_PAUSE_S, iso.CRASHES) for m in MODES]
    crash_runs.append(("ray*", "ray", RAY_PAUSE_S, RAY_REPEATS))
    for label, mode, pause, reps in crash_runs:
        out = iso.crash_recovery(mode, iso.Boom, pause, reps)
        print(f"  {'hivekeeper ' + label:24s} p50 {pct(out, 0.5):8.2f} ms  max {max(out):8.2f} ms"
              f"   ratio p50 {pct(out, 0.5) / r50:6.2f}x")  # fmt: skip

    print()
    print("4. Ray agents one local Ray holds (idle echo agents, one actor process each)")
    rows, verdict = ray_capacity()
    print("  agents  start s  all answered s  stop s  actors' RSS MiB  MemAvail drop MiB")
    for r in rows:
        print(f"  {r['size']:6d} {r['start']:8.2f} {r['answered']:15.2f} {r['stop']:7.2f}"
              f" {r['rss']:16.0f} {r['drop']:18.0f}")  # fmt: skip
    print(f"  {verdict}")
    ray.shutdown()
    print(f"\ntotal run time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
