"""Chaos soak: many agents, a stream of asks, a share of them misbehaving on purpose.

Run:  python -m bench.chaos_soak [--agents 100] [--asks 100000] [--fault-rate 0.1]
        [--callers 8] [--message-timeout 0.5] [--seed 1]

Each ask carries an instruction; with probability fault-rate it is a fault, chosen evenly
from: crash (exception in handle), hang (blocks past its message deadline), invalid
(INVALID_OUTPUT result), slow (sleeps well within its deadline). Half the agents have a
rule-based fallback. Asks get a deadline of 10 x the message deadline, so every ask should be
answered by the runtime (its handler, the watchdog, a fallback, the supervisor) long before.
Printed: asks sent, results by status, asks the runtime never answered (ended only by the
caller's own deadline: must be 0), worst answer time beyond the ask's deadline, abandoned
threads, RSS at start and end.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from actors import Agent, ExecutionResult, ExecutionStatus, FailureReason, RuleBasedAgent
from bench._common import quiet, rss_mib
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start

FAULTS = ("crash", "hang", "invalid", "slow")


class ChaosAgent(Agent):
    def __init__(self, hang_for: float, slow_for: float) -> None:
        self.hang_for = hang_for
        self.slow_for = slow_for
        self._pause = threading.Event()

    def handle(self, message: Any) -> Any:
        kind = message["kind"]
        if kind == "crash":
            raise RuntimeError("chaos crash")
        if kind == "hang":
            self._pause.wait(self.hang_for)
            return "too late"
        if kind == "invalid":
            return ExecutionResult(status=ExecutionStatus.INVALID_OUTPUT, error="chaos junk")
        if kind == "slow":
            self._pause.wait(self.slow_for)
        return message["n"]


class Safe(RuleBasedAgent):
    default = {"safe": True}


@dataclass
class SoakReport:
    sent: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    fallback_used: int = 0
    unanswered: int = 0  # ended only by the caller's own deadline
    worst_overrun: float = 0.0
    abandoned_total: int = 0
    abandoned_running: int = 0
    rss_start: float = 0.0
    rss_end: float = 0.0
    seconds: float = 0.0
    tree_state: str = ""

    def lines(self) -> list[str]:
        return [
            f"asks sent:                 {self.sent}",
            "results by status:         "
            + ", ".join(f"{k}={v}" for k, v in sorted(self.by_status.items())),
            f"answered by a fallback:    {self.fallback_used}",
            f"asks the runtime never answered (caller's deadline ended them): {self.unanswered}",
            f"worst answer beyond deadline: {self.worst_overrun * 1000:.1f} ms",
            f"abandoned threads:         {self.abandoned_total} in all, {self.abandoned_running} still running",
            f"RSS start/end:             {self.rss_start:.1f} MiB / {self.rss_end:.1f} MiB",
            f"tree state at the end:     {self.tree_state}",
            f"wall time:                 {self.seconds:.1f} s ({self.sent / max(self.seconds, 1e-9):,.0f} asks/s)",
        ]


def run_soak(
    agents: int = 100,
    asks: int = 100_000,
    fault_rate: float = 0.1,
    callers: int = 8,
    message_timeout: float = 0.5,
    ask_timeout: float | None = None,
    seed: int = 1,
) -> SoakReport:
    rng = random.Random(seed)
    ask_timeout = ask_timeout or message_timeout * 10
    hang_for, slow_for = message_timeout * 2, message_timeout / 10
    children = [
        ChildSpec(
            f"a{i}",
            ChaosAgent,
            args=(hang_for, slow_for),
            message_timeout=message_timeout,
            fallback=Safe if i % 2 else None,
        )
        for i in range(agents)
    ]
    tree = Supervisor(
        "soak", strategy=OneForOne(max_restarts=1_000_000, within_seconds=1.0), children=children
    )
    plan = []
    for n in range(asks):
        kind = rng.choice(FAULTS) if rng.random() < fault_rate else "ok"
        plan.append((f"soak/a{rng.randrange(agents)}", {"kind": kind, "n": n}))
    report = SoakReport(rss_start=rss_mib())
    lock = threading.Lock()
    started = time.monotonic()
    with start(tree) as system:

        def one(item: tuple[str, dict[str, Any]]) -> None:
            path, message = item
            t0 = time.monotonic()
            result = system.ask(path, message, timeout=ask_timeout)
            overrun = time.monotonic() - t0 - ask_timeout
            with lock:
                report.sent += 1
                if result.reason is FailureReason.ASK_TIMEOUT:
                    report.unanswered += 1
                report.by_status[result.status.value] += 1
                report.fallback_used += int(result.fallback_used)
                report.worst_overrun = max(report.worst_overrun, overrun)

        # callers pull from one shared iterator (no 100,000 futures queued up front, which
        # would make the harness, not hivekeeper, the thing whose memory grows)
        source = iter(plan)
        source_lock = threading.Lock()

        def caller() -> None:
            while True:
                with source_lock:
                    item = next(source, None)
                if item is None:
                    return
                one(item)

        with ThreadPoolExecutor(callers) as pool:
            for f in [pool.submit(caller) for _ in range(callers)]:
                f.result()
        health = system.health()
        report.tree_state = health.state
        for actor in health.actors.values():
            report.abandoned_total += actor.abandoned_total
            report.abandoned_running += actor.abandoned
        report.rss_end = rss_mib()
    report.seconds = time.monotonic() - started
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--asks", type=int, default=100_000)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--message-timeout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    quiet()
    report = run_soak(
        args.agents, args.asks, args.fault_rate, args.callers, args.message_timeout, seed=args.seed
    )
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
