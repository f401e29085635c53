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
            bad = [pool.submit(system.ask, "root/bad", f, timeout=20.0) for f in faults]
            good = [system.ask("root/good", i, timeout=2.0) for i in range(300)]
            assert [r.status for r in good] == [ExecutionStatus.SUCCESS] * 300
            assert [r.data for r in good] == list(range(300))
            bad_results = [f.result(timeout=30) for f in bad]
            # with a breaker and a fallback, every ask to the misbehaving agent is answered
            # SUCCESS: by the primary (fine, slow) or by the rule-based fallback
            assert [r.status for r in bad_results] == [ExecutionStatus.SUCCESS] * len(faults)
            for fault, result in zip(faults, bad_results, strict=True):
                if fault in ("crash", "hang", "invalid"):
                    assert result.fallback_used, (fault, result)
                    assert result.handled_by == "root/bad#Human"
                    assert result.reason is not None
                elif not result.fallback_used:
                    assert result.data == ("slow answer" if fault == "slow" else fault)
            health = system.health()
            assert health.actors["root/good"].restarts == 0
            assert health.actors["root/good"].processed == 300
            assert health.actors["root/bad"].restarts >= 1
    finally:
        gate.release()


def test_small_chaos_soak_every_ask_gets_a_result():
    report = run_soak(agents=20, asks=2000, fault_rate=0.1, callers=8, message_timeout=0.2, seed=7)
    assert report.sent == 2000
    assert report.unanswered == 0  # the runtime answered every ask before the caller gave up
    assert sum(report.by_status.values()) == 2000
    assert report.by_status["success"] > 1500
    assert report.tree_state in ("running", "degraded")
