"""Durable mailboxes and persisted state: their cost against the same agent without, in one
run, and recovery after kill -9.

Run: python -m bench.durable_mailbox      (env: N=20000 PENDING=100000)
- tells/s through one agent (end to end: N tells, then an ask behind them): in memory;
  durable (synchronous=FULL, the default) from 1 and 16 sending threads; durable NORMAL.
- ask round trip p50/p99: in memory, durable, durable + persisted state (a snapshot saved
  after every message).
- recovery: a process accepts PENDING tells for an agent that is busy, is SIGKILLed; then
  the time for start() of the same tree on the same store (what was pending queued again
  first), and until all of it is handled.
The store's directory is a temporary one on this machine's disk (its fsync is the cost).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from actors import Agent
from bench._common import pct, quiet
from supervisor import ChildSpec, Supervisor, start

N = int(os.environ.get("N", "20000"))
PENDING = int(os.environ.get("PENDING", "100000"))


class Counter(Agent):
    def __init__(self) -> None:
        self.n = 0

    def snapshot(self) -> dict[str, int]:
        return {"n": self.n}

    def restore(self, state: dict[str, Any]) -> None:
        self.n = state["n"]

    def handle(self, message: Any) -> Any:
        if message == "hold":
            _GATE.wait()
        self.n += 1
        return self.n


_GATE = threading.Event()


def _tree(**spec: Any) -> Supervisor:
    return Supervisor("bench", children=[ChildSpec("c", Counter, **spec)])


def tells_per_s(store: str | None, senders: int, n: int, **spec: Any) -> float:
    with start(_tree(**spec), store=store) as system:
        per = n // senders

        def send() -> None:
            for i in range(per):
                system.tell("bench/c", i)

        threads = [threading.Thread(target=send) for _ in range(senders)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        system.ask("bench/c", "end", timeout=600.0)
        return per * senders / (time.perf_counter() - t0)


def ask_us(store: str | None, n: int, **spec: Any) -> tuple[float, float]:
    with start(_tree(**spec), store=store) as system:
        out = []
        for i in range(n):
            t0 = time.perf_counter_ns()
            system.ask("bench/c", i, timeout=30.0)
            out.append((time.perf_counter_ns() - t0) / 1e3)
    return pct(out, 0.5), pct(out, 0.99)


def recovery(tmp: Path) -> tuple[float, float]:
    db = tmp / "recovery.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.durable_mailbox", "--fill", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip() == "filled":
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    _GATE.set()  # the held message comes back first: here it does not hold
    t0 = time.perf_counter()
    system = start(_tree(durable=True, persist=True), store=f"sqlite:///{db}")
    started = time.perf_counter() - t0
    system.ask("bench/c", "end", timeout=600.0)  # behind everything recovered
    drained = time.perf_counter() - t0
    system.shutdown()
    return started, drained


def fill(db: str) -> None:
    """The child of recovery(): PENDING tells accepted while the agent is held busy."""
    quiet()
    system = start(_tree(durable=True, persist=True), store=f"sqlite:///{db}")
    system.tell("bench/c", "hold")
    per = PENDING // 16

    def send() -> None:
        for i in range(per):
            system.tell("bench/c", i)

    threads = [threading.Thread(target=send) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("filled", flush=True)
    threading.Event().wait()  # until killed


def main() -> None:
    quiet()
    with tempfile.TemporaryDirectory(dir=os.path.expanduser("~")) as tmp:
        full = f"sqlite:///{tmp}/full.db"
        normal = f"sqlite:///{tmp}/normal.db?synchronous=NORMAL"
        print(f"durable mailboxes, {os.cpu_count()} cores, store in {tmp}")
        base = tells_per_s(None, 1, N)
        rows = [
            ("in memory, 1 sender", base),
            ("durable FULL, 1 sender", tells_per_s(full, 1, N // 4, durable=True)),
            ("durable FULL, 16 senders", tells_per_s(full, 16, N, durable=True)),
            ("durable NORMAL, 16 senders", tells_per_s(normal, 16, N, durable=True)),
            ("durable FULL + state, 16 senders",
             tells_per_s(full, 16, N, durable=True, persist=True)),
        ]  # fmt: skip
        print("  tells through one agent            msg/s    vs in memory")
        for name, rate in rows:
            print(f"  {name:32s} {rate:8,.0f}   {rate / base:6.3f}x")
        n = N // 10
        asks = [
            ("in memory", ask_us(None, n)),
            ("durable FULL", ask_us(full, n, durable=True)),
            ("persisted state only", ask_us(full, n, persist=True)),
            ("durable FULL + state", ask_us(full, n, durable=True, persist=True)),
        ]
        print("  ask round trip                     p50 us    p99 us")
        for name, (p50, p99) in asks:
            print(f"  {name:32s} {p50:8.0f}  {p99:8.0f}")
        started, drained = recovery(Path(tmp))
        print(
            f"  recovery after kill -9 with {PENDING:,} pending: start() {started:.2f} s, "
            f"all handled {drained:.2f} s"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fill"]:
        fill(sys.argv[2])
    else:
        main()
