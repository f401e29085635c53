"""Message deadlines and hung agents, ask deadlines, driven by the fake clock."""

from __future__ import annotations

from supervisor import ChildSpec, ExecutionStatus, FakeClock, Supervisor, start
from supervisor.testing import capture_events, wait_until
from tests.agents import Blocking, Echo, Gate, Human


def test_hung_handler_is_answered_at_its_deadline_abandoned_and_replaced():
    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("w", Blocking, args=(gate,), message_timeout=30.0),
            ChildSpec("echo", Echo),
        ],
    )
    try:
        with capture_events() as events, start(tree, clock=clock) as system:
            hung = system.ask_future("root/w", "block", timeout=120.0)
            gate.wait_entered()
            queued = [system.ask_future("root/w", f"q{i}", timeout=120.0) for i in range(3)]
            clock.advance(29.0)
            assert not hung.done()
            clock.advance(1.5)
            answer = hung.result()
            assert answer.status is ExecutionStatus.TIMEOUT
            assert "message_timeout=30.0" in (answer.error or "")
            results = [q.result() for q in queued]
            assert [r.status for r in results] == [ExecutionStatus.SUCCESS] * 3
            old_instance = None
            assert len({r.data[1] for r in results}) == 1
            events.wait_for("child_abandoned", path="root/w")
            health = system.health().actors["root/w"]
            assert health.restarts == 1
            assert health.abandoned == 1
            assert health.abandoned_total == 1
            assert health.failures["timeout"] == 1
            assert system.ask("root/echo", "ok", timeout=5.0).data == "ok"
            gate.release()  # the abandoned thread finishes in the background; its result is dropped
            wait_until(lambda: system.health().actors["root/w"].abandoned == 0)
            events.wait_for("late_result_discarded", path="root/w")
            del old_instance
    finally:
        gate.release()


def test_hang_counts_toward_the_restart_budget():
    from strategies import OneForOne

    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=0),
        children=[
            ChildSpec("w", Blocking, args=(gate,), message_timeout=5.0),
        ],
    )
    try:
        with start(tree, clock=clock) as system:
            pending = system.ask_future("root/w", "block", timeout=60.0)
            gate.wait_entered()
            clock.advance(6.0)
            assert pending.result().status is ExecutionStatus.TIMEOUT
            wait_until(lambda: system.state == "failed")
    finally:
        gate.release()


def test_hung_handler_with_a_fallback_is_answered_by_the_fallback_at_the_deadline():
    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("w", Blocking, args=(gate,), message_timeout=10.0, fallback=Human),
        ],
    )
    try:
        with start(tree, clock=clock) as system:
            pending = system.ask_future("root/w", "block: refund please", timeout=60.0)
            gate.wait_entered()
            clock.advance(11.0)
            answer = pending.result()
            assert answer.status is ExecutionStatus.SUCCESS
            assert answer.fallback_used
            assert answer.handled_by == "root/w#Human"
            assert answer.data == {"action": "route_to_human", "queue": "billing"}
    finally:
        gate.release()


def test_no_message_timeout_means_no_watchdog():
    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("w", Blocking, args=(gate,), message_timeout=None)]
    )
    with start(tree, clock=clock) as system:
        pending = system.ask_future("root/w", "block", timeout=10_000.0)
        gate.wait_entered()
        clock.advance(3600.0)
        gate.release()
        assert pending.result().status is ExecutionStatus.SUCCESS
        assert system.health().actors["root/w"].restarts == 0


def test_ask_deadline_expiring_in_the_mailbox_is_a_dead_letter_and_is_not_processed():
    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("w", Blocking, args=(gate,), message_timeout=None)]
    )
    with start(tree, clock=clock) as system:
        busy = system.ask_future("root/w", "block", timeout=100.0)
        gate.wait_entered()
        short = system.ask_future("root/w", "expires", timeout=1.0)
        clock.advance(2.0)
        answer = short.result()
        assert answer.status is ExecutionStatus.TIMEOUT
        assert "still queued" in (answer.error or "")
        gate.release()
        assert busy.result().status is ExecutionStatus.SUCCESS
        wait_until(lambda: len(system.dead_letters()) == 1)
        letter = system.dead_letters()[0]
        assert letter.reason == "deadline_expired"
        assert letter.message == "expires"
        assert letter.path == "root/w"
        assert system.health().actors["root/w"].processed == 1  # "expires" never ran
        assert system.health().dead_letters == {"deadline_expired": 1}


def test_ask_returns_by_its_timeout_even_when_the_handler_is_slow():
    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("w", Blocking, args=(gate,), message_timeout=None)]
    )
    with start(tree, clock=clock) as system:
        pending = system.ask_future("root/w", "block", timeout=5.0)
        gate.wait_entered()
        clock.advance(5.0)
        answer = pending.result()
        assert answer.status is ExecutionStatus.TIMEOUT
        assert "handler had been running" in (answer.error or "")
        gate.release()


def test_tell_with_a_ttl_that_expires_is_a_dead_letter():
    clock, gate = FakeClock(), Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("w", Blocking, args=(gate,), message_timeout=None)]
    )
    with start(tree, clock=clock) as system:
        busy = system.ask_future("root/w", "block", timeout=100.0)
        gate.wait_entered()
        system.tell("root/w", "stale news", ttl=1.0)
        clock.advance(2.0)
        gate.release()
        busy.result()
        wait_until(lambda: len(system.dead_letters(reason="deadline_expired")) == 1)
