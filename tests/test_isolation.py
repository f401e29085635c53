"""One misbehaving agent must not cascade into its siblings, and no ask is ever lost."""

from __future__ import annotations

import concurrent.futures

from bench.chaos_soak import run_soak
from strategies import BreakerPolicy, OneForOne
from supervisor import ChildSpec, ExecutionStatus, Supervisor, start
from tests.agents import Echo, Gate, Human, Misbehaving


def test_a_sibling_keeps_answering_while_its_neighbour_misbehaves_in_every_way():
    gate = Gate()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=1000, within_seconds=1.0),
        children=[
            ChildSpec(
                "bad",
                Misbehaving,
                args=(gate,),
                message_timeout=0.2,
                breaker=BreakerPolicy(fail_max=3, reset_timeout=0.05),
                fallback=Human,
            ),
            ChildSpec("good", Echo),
        ],
    )
    faults = ["crash", "hang", "invalid", "slow", "fine"] * 8
    try:
        with start(tree) as system, concurrent.futures.ThreadPoolExecutor(4) as pool:
            bad = [pool.submit(system.ask, "root/bad", f, timeout=2.0) for f in faults]
            good = [system.ask("root/good", i, timeout=2.0) for i in range(300)]
            assert [r.status for r in good] == [ExecutionStatus.SUCCESS] * 300
            assert [r.data for r in good] == list(range(300))
            bad_results = [f.result(timeout=10) for f in bad]
            assert all(r is not None for r in bad_results)
            assert {r.status for r in bad_results} <= {
                ExecutionStatus.SUCCESS,
                ExecutionStatus.FAILURE,
                ExecutionStatus.TIMEOUT,
                ExecutionStatus.INVALID_OUTPUT,
                ExecutionStatus.REJECTED,
            }
            health = system.health()
            assert health.actors["root/good"].restarts == 0
            assert health.actors["root/good"].processed == 300
            assert health.actors["root/bad"].restarts >= 1
    finally:
        gate.release()


def test_small_chaos_soak_every_ask_gets_a_result():
    report = run_soak(agents=20, asks=2000, fault_rate=0.1, callers=8, message_timeout=0.2, seed=7)
    assert report.sent == 2000
    assert report.missing == 0
    assert sum(report.by_status.values()) == 2000
    assert report.by_status["success"] > 1500
    assert report.tree_state in ("running", "degraded")
