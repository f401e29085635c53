"""Let it crash: strategies, restart types, restart budget, escalation and the failed root."""

from __future__ import annotations

import pytest

from strategies import OneForAll, OneForOne, RestForOne
from supervisor import ChildSpec, ExecutionStatus, FakeClock, Supervisor, TreeStartError, start
from supervisor.testing import capture_events
from tests.agents import AlwaysCrash, Blocking, Counter, Crashy, Echo, Gate, Lifecycle


def instance_of(system, path):
    return system.ask(path, "who", timeout=5.0).unwrap()[1]


def test_crash_answers_failure_and_the_replacement_is_a_fresh_instance():
    tree = Supervisor("root", children=[ChildSpec("c", Counter)])
    with start(tree) as system:
        assert system.ask("root/c", "x", timeout=5.0).data == 1
        assert system.ask("root/c", "x", timeout=5.0).data == 2
        crashed = system.ask("root/c", "boom", timeout=5.0)
        assert crashed.status is ExecutionStatus.FAILURE
        assert crashed.error == "root/c: RuntimeError: boom!"
        assert crashed.handled_by == "root/c"
        # the strategy was applied before the caller was answered
        assert system.health().actors["root/c"].restarts == 1
        assert system.ask("root/c", "x", timeout=5.0).data == 1  # fresh state
        assert system.health().actors["root/c"].last_error == "RuntimeError: boom!"


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (OneForOne(), {"b"}),
        (OneForAll(), {"a", "b", "c"}),
        (RestForOne(), {"b", "c"}),
    ],
)
def test_strategies_restart_the_right_siblings(strategy, restarted):
    tree = Supervisor(
        "root",
        strategy=strategy,
        children=[
            ChildSpec("a", Crashy),
            ChildSpec("b", Crashy),
            ChildSpec("c", Crashy),
        ],
    )
    with capture_events() as events, start(tree) as system:
        before = {k: instance_of(system, f"root/{k}") for k in "abc"}
        assert system.ask("root/b", "boom", timeout=5.0).status is ExecutionStatus.FAILURE
        events.wait_for("child_started", path="root/b", count=2)
        after = {k: instance_of(system, f"root/{k}") for k in "abc"}
    changed = {k for k in "abc" if before[k] != after[k]}
    assert changed == restarted


def test_one_for_all_stops_siblings_in_reverse_and_restarts_in_order():
    journal: list[str] = []
    tree = Supervisor(
        "root",
        strategy=OneForAll(),
        children=[ChildSpec(n, Lifecycle, args=(journal, n)) for n in ("a", "b", "c")],
    )
    with capture_events() as events, start(tree) as system:
        journal.clear()
        system.ask("root/b", "boom", timeout=5.0)
        events.wait_for("child_started", path="root/c", count=2)
        assert journal == ["stop:c", "stop:a", "start:a", "start:b", "start:c"]


def test_sibling_being_restarted_finishes_its_current_message_and_keeps_its_queue():
    gate = Gate()
    tree = Supervisor(
        "root",
        strategy=OneForAll(),
        children=[
            ChildSpec("crashy", Crashy),
            ChildSpec("busy", Blocking, args=(gate,)),
        ],
    )
    with capture_events() as events, start(tree) as system:
        first = system.ask_future("root/busy", "block", timeout=10.0)
        gate.wait_entered()
        queued = system.ask_future("root/busy", "queued", timeout=10.0)
        crashed = system.ask_future("root/crashy", "boom", timeout=10.0)
        events.wait_for("child_exited", path="root/crashy")
        gate.release()
        finished = first.result()
        assert finished.status is ExecutionStatus.SUCCESS
        old_instance = finished.data[1]
        assert crashed.result().status is ExecutionStatus.FAILURE
        later = queued.result()
        assert later.status is ExecutionStatus.SUCCESS
        assert later.data[1] != old_instance  # handled by the replacement


def test_queued_messages_survive_a_crash_and_go_to_the_replacement():
    gate = Gate()
    with start(Supervisor("root", children=[ChildSpec("w", Blocking, args=(gate,))])) as system:
        doomed = system.ask_future("root/w", "block-crash", timeout=10.0)
        gate.wait_entered()
        waiting = [system.ask_future("root/w", f"m{i}", timeout=10.0) for i in range(5)]
        system.tell("root/w", "a tell")
        gate.release()
        assert doomed.result().status is ExecutionStatus.FAILURE
        results = [p.result() for p in waiting]
        assert [r.status for r in results] == [ExecutionStatus.SUCCESS] * 5
        assert [r.data[0] for r in results] == [f"m{i}" for i in range(5)]
        assert len({r.data[1] for r in results}) == 1
        assert system.health().actors["root/w"].restarts == 1
        assert system.dead_letters() == []


def test_tell_crash_is_let_crash_too():
    with (
        capture_events() as events,
        start(Supervisor("root", children=[ChildSpec("c", Counter)])) as system,
    ):
        system.tell("root/c", "boom")
        events.wait_for("child_started", path="root/c", count=2)
        assert system.health().actors["root/c"].restarts == 1


def test_transient_child_stopping_normally_is_not_restarted():
    journal: list[str] = []
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("t", Lifecycle, args=(journal, "t"), restart="transient"),
            ChildSpec("p", Lifecycle, args=(journal, "p"), restart="permanent"),
        ],
    )
    with capture_events() as events, start(tree) as system:
        assert system.ask("root/t", "quit", timeout=5.0).data == "t"
        events.wait_for("child_exited", path="root/t")
        assert system.ask("root/p", "quit", timeout=5.0).data == "p"
        events.wait_for("child_started", path="root/p", count=2)
        stopped = system.ask("root/t", "hello", timeout=5.0)
        assert stopped.status is ExecutionStatus.FAILURE
        assert "stopped" in (stopped.error or "")
        assert system.health().actors["root/t"].state == "stopped"
        # a transient child that crashes is restarted
        tree2 = Supervisor("r2", children=[ChildSpec("t", Counter, restart="transient")])
    with start(tree2) as system2:
        system2.ask("r2/t", "boom", timeout=5.0)
        assert system2.ask("r2/t", "x", timeout=5.0).data == 1


def test_temporary_child_is_removed_after_crashing_and_its_queue_is_answered():
    gate = Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("tmp", Blocking, args=(gate,), restart="temporary")]
    )
    with capture_events() as events, start(tree) as system:
        doomed = system.ask_future("root/tmp", "block-crash", timeout=10.0)
        gate.wait_entered()
        waiting = system.ask_future("root/tmp", "queued", timeout=10.0)
        gate.release()
        assert doomed.result().status is ExecutionStatus.FAILURE
        queued = waiting.result()
        assert queued.status is ExecutionStatus.FAILURE
        assert "removed" in (queued.error or "")
        events.wait_for("child_removed", path="root/tmp")
        from supervisor import UnknownPathError

        with pytest.raises(UnknownPathError):
            system.ask("root/tmp", "hi", timeout=1.0)


def test_budget_exhaustion_escalates_through_two_levels_to_a_failed_root():
    clock = FakeClock()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=1, within_seconds=60),
        children=[
            ChildSpec("healthy", Echo),
            Supervisor(
                "mid",
                strategy=OneForOne(max_restarts=1, within_seconds=60),
                children=[
                    Supervisor(
                        "leafsup",
                        strategy=OneForOne(max_restarts=2, within_seconds=60),
                        children=[
                            ChildSpec("bad", AlwaysCrash),
                        ],
                    ),
                ],
            ),
        ],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        # leafsup allows 2 restarts, the 3rd escalates to mid; mid restarts leafsup once (fresh
        # budget), the next escalation exhausts mid, which escalates to root; root restarts mid
        # once; one more round exhausts root.
        for _ in range(30):
            result = system.ask("root/mid/leafsup/bad", "x", timeout=5.0)
            if system.state == "failed":
                break
            assert result.status is ExecutionStatus.FAILURE
        assert system.state == "failed"
        escalated = [e["path"] for e in events.matching("supervisor_escalated")]
        assert "root/mid/leafsup" in escalated
        assert "root/mid" in escalated
        assert escalated[-1] == "root"
        health = system.health()
        assert health.state == "failed"
        assert not health.healthy
        assert health.actors["root"].state == "failed"
        assert health.actors["root/mid"].restarts >= 1
        assert health.actors["root/mid/leafsup"].restarts >= 1
        answer = system.ask("root/healthy", "still there?", timeout=5.0)
        assert answer.status is ExecutionStatus.FAILURE
        assert "tree failed" in (answer.error or "")
        failed_events = events.matching("tree_failed")
        assert failed_events
        assert "restart budget exhausted" in failed_events[0]["reason"]


def test_budget_window_slides_with_the_fake_clock():
    clock = FakeClock()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=2, within_seconds=5.0),
        children=[
            ChildSpec("c", Counter),
        ],
    )
    with start(tree, clock=clock) as system:
        for _ in range(2):
            system.ask("root/c", "boom", timeout=5.0)
        clock.advance(5.5)  # both restarts leave the window
        for _ in range(2):
            system.ask("root/c", "boom", timeout=5.0)
        assert system.state == "running"
        assert system.health().actors["root"].budget_used == 2
        system.ask("root/c", "boom", timeout=5.0)
        assert system.state == "failed"


def test_subtree_restarted_by_its_parent_gets_a_fresh_budget():
    clock = FakeClock()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=5, within_seconds=60),
        children=[
            Supervisor(
                "sub",
                strategy=OneForOne(max_restarts=1, within_seconds=60),
                children=[
                    ChildSpec("c", Counter),
                ],
            ),
        ],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        system.ask("root/sub/c", "boom", timeout=5.0)
        system.ask("root/sub/c", "boom", timeout=5.0)  # exhausts sub -> root restarts sub
        events.wait_for("child_started", path="root/sub", count=2)
        system.ask("root/sub/c", "boom", timeout=5.0)  # fresh budget: one restart allowed
        assert len(events.matching("supervisor_escalated", path="root/sub")) == 1
        assert system.ask("root/sub/c", "x", timeout=5.0).data == 1


def test_root_failing_while_starting_raises_tree_start_error():
    journal: list[str] = []
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=2),
        children=[
            ChildSpec("ok", Lifecycle, args=(journal, "ok")),
            ChildSpec("broken", Lifecycle, args=(journal, "broken", True)),
        ],
    )
    with pytest.raises(TreeStartError, match="restart budget exhausted"):
        start(tree, clock=FakeClock())
    assert journal[0] == "start:ok"
    assert journal[-1] == "stop:ok"


def test_crash_in_on_start_counts_as_a_crash_and_is_retried():
    attempts: list[int] = []

    class FlakyStart(Echo):
        def on_start(self) -> None:
            attempts.append(1)
            if len(attempts) < 3:
                raise RuntimeError("not yet")

    with start(
        Supervisor("root", children=[ChildSpec("f", FlakyStart)]), clock=FakeClock()
    ) as system:
        assert system.ask("root/f", "hi", timeout=5.0).data == "hi"
        assert len(attempts) == 3
        assert system.health().actors["root/f"].restarts == 2
