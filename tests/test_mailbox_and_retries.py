"""Bounded mailboxes, retries with backoff, poison quarantine, and no lost asks."""

from __future__ import annotations

from typing import Any

from actors import Agent
from strategies import Backoff, OneForOne
from supervisor import ChildSpec, ExecutionStatus, FakeClock, Supervisor, start
from supervisor.testing import capture_events, wait_until
from tests.agents import AlwaysCrash, Blocking, Gate, Human


def test_overflow_reject_refuses_new_messages_at_once():
    gate = Gate()
    tree = Supervisor("root", children=[ChildSpec("w", Blocking, args=(gate,), mailbox_size=2)])
    with start(tree) as system:
        busy = system.ask_future("root/w", "block", timeout=10.0)
        gate.wait_entered()
        queued = [system.ask_future("root/w", f"q{i}", timeout=10.0) for i in range(2)]
        refused = system.ask("root/w", "one too many", timeout=10.0)
        assert refused.status is ExecutionStatus.REJECTED
        assert refused.error == "root/w: mailbox full (2 queued)"
        assert system.health().actors["root/w"].mailbox_depth == 2
        assert system.health().actors["root/w"].mailbox_limit == 2
        gate.release()
        assert busy.result().status is ExecutionStatus.SUCCESS
        assert [q.result().data[0] for q in queued] == ["q0", "q1"]


def test_overflow_drop_oldest_answers_and_dead_letters_the_dropped_message():
    gate = Gate()
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("w", Blocking, args=(gate,), mailbox_size=2, overflow="drop_oldest"),
        ],
    )
    with start(tree) as system:
        busy = system.ask_future("root/w", "block", timeout=10.0)
        gate.wait_entered()
        q0, q1 = (system.ask_future("root/w", f"q{i}", timeout=10.0) for i in range(2))
        q2 = system.ask_future("root/w", "q2", timeout=10.0)
        dropped = q0.result()
        assert dropped.status is ExecutionStatus.REJECTED
        assert "dropped" in (dropped.error or "")
        letters = system.dead_letters(reason="mailbox_overflow")
        assert [d.message for d in letters] == ["q0"]
        gate.release()
        busy.result()
        assert [q.result().data[0] for q in (q1, q2)] == ["q1", "q2"]


def test_overflow_with_a_fallback_is_answered_by_the_fallback():
    gate = Gate()
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("w", Blocking, args=(gate,), mailbox_size=1, fallback=Human),
        ],
    )
    with start(tree) as system:
        busy = system.ask_future("root/w", "block", timeout=10.0)
        gate.wait_entered()
        system.ask_future("root/w", "q", timeout=10.0)
        answer = system.ask("root/w", "refund", timeout=10.0)
        assert answer.fallback_used
        gate.release()
        busy.result()


class CrashTimes(Agent):
    """Crashes on the first `n` deliveries of each message (counted across restarts)."""

    def __init__(self, seen: dict[Any, int], n: int) -> None:
        self.seen = seen
        self.n = n

    def handle(self, message: Any) -> Any:
        self.seen[message] = self.seen.get(message, 0) + 1
        if self.seen[message] <= self.n:
            raise RuntimeError(f"attempt {self.seen[message]} failed")
        return f"ok after {self.seen[message]}"


def test_retries_redeliver_to_the_restarted_actor():
    seen: dict[Any, int] = {}
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10),
        children=[
            ChildSpec("w", CrashTimes, args=(seen, 2), retries=2),
        ],
    )
    with capture_events() as events, start(tree) as system:
        answer = system.ask("root/w", "job", timeout=10.0)
        assert answer.status is ExecutionStatus.SUCCESS
        assert answer.data == "ok after 3"
        assert answer.attempts == 3
        assert len(events.matching("message_retrying")) == 2
        assert system.health().actors["root/w"].restarts == 2
        assert system.dead_letters() == []


def test_a_message_that_crashes_every_attempt_is_quarantined_then_answered():
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10),
        children=[
            ChildSpec("w", AlwaysCrash, retries=2, fallback=Human),
        ],
    )
    with capture_events() as events, start(tree) as system:
        answer = system.ask("root/w", "poison pill", timeout=10.0)
        assert answer.fallback_used
        assert answer.attempts == 3
        poison = system.dead_letters(reason="poison")
        assert len(poison) == 1
        assert poison[0].message == "poison pill"
        assert poison[0].attempts == 3
        assert "ValueError" in (poison[0].error or "")
        events.wait_for("message_quarantined", path="root/w")


def test_without_retries_a_crashing_message_is_not_quarantined():
    with start(Supervisor("root", children=[ChildSpec("w", AlwaysCrash)])) as system:
        assert system.ask("root/w", "x", timeout=5.0).status is ExecutionStatus.FAILURE
        assert system.dead_letters() == []


def test_retry_backoff_waits_on_the_clock():
    clock = FakeClock()
    seen: dict[Any, int] = {}
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10),
        children=[
            ChildSpec(
                "w",
                CrashTimes,
                args=(seen, 1),
                retries=1,
                backoff=Backoff(min_backoff=5.0, max_backoff=5.0, random_factor=0.0),
            ),
        ],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        pending = system.ask_future("root/w", "job", timeout=100.0)
        events.wait_for("message_retrying", path="root/w")
        events.wait_for("child_started", path="root/w", count=2)
        assert not pending.done()
        clock.advance(5.0)
        assert pending.result().data == "ok after 2"


def test_a_tell_that_nobody_can_handle_is_a_dead_letter():
    clock = FakeClock()
    tree = Supervisor(
        "root", strategy=OneForOne(max_restarts=0), children=[ChildSpec("w", AlwaysCrash)]
    )
    with start(tree, clock=clock) as system:
        system.ask("root/w", "x", timeout=5.0)
        assert system.state == "failed"
        system.tell("root/w", "lost?")
        wait_until(lambda: any(d.message == "lost?" for d in system.dead_letters()))
