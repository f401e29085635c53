"""Rate limits: ChildSpec(rate_limit=RateLimit(...)), a token bucket per RateLimit object.

Over the limit a message waits in its mailbox (no thread waits for it: a timer wakes the host
when a token is due) while its deadline allows; else it is REJECTED with reason rate_limited,
or its fallback answers. All on a fake clock.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import ValidationError

from actors import Agent, ExecutionStatus, FailureReason, Rule, RuleBasedAgent
from strategies import RateLimit, TokenBucket
from supervisor import ChildSpec, Supervisor, start
from supervisor.testing import FakeClock, wait_until

from .agents import Echo

# -- the bucket, pure ------------------------------------------------------------------------


def test_a_bucket_gives_its_burst_then_one_token_per_interval():
    bucket = TokenBucket.full(RateLimit(per_second=2.0, burst=3), now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # nothing taken: wait half a second
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.available(100.0) == 3.0  # never more than the burst
    assert bucket.eta(100.0, ahead=5) == pytest.approx(1.5)  # 6th in line: 3 missing tokens


def test_default_burst_is_one_seconds_worth():
    assert RateLimit(per_second=0.5).capacity == 1
    assert RateLimit(per_second=10).capacity == 10


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_second": 0},
        {"per_second": -1},
        {"per_second": float("nan")},
        {"per_second": float("inf")},
        {"per_second": 1, "burst": 0},
        {"per_second": "fast"},
    ],
)
def test_bad_rate_limits_are_refused_when_declared(kwargs: dict[str, Any]):
    with pytest.raises(ValidationError):
        RateLimit(**kwargs)


def test_equal_limits_are_separate_budgets_and_one_object_is_one():
    a, b = RateLimit(per_second=1), RateLimit(per_second=1)
    assert a != b
    assert a == a  # noqa: PLR0124 - identity is the point
    assert len({a, b, a}) == 2


# -- in a running tree -------------------------------------------------------------------------


class Counts(Agent):
    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    def handle(self, message: Any) -> Any:
        self.seen.append(message)
        return message


def test_over_the_limit_a_message_waits_in_the_mailbox_until_a_token_is_due():
    clock, seen = FakeClock(), []
    limit = RateLimit(per_second=1.0, burst=2)
    tree = Supervisor("root", children=[ChildSpec("a", Counts, args=(seen,), rate_limit=limit)])
    with start(tree, clock=clock) as system:
        assert system.ask("root/a", 1, timeout=10.0).data == 1
        assert system.ask("root/a", 2, timeout=10.0).data == 2
        third = system.ask_future("root/a", 3, timeout=10.0)
        wait_until(lambda: system.health().actors["root/a"].rate_limit is not None
                   and system.health().actors["root/a"].rate_limit.waiting == 1)  # fmt: skip
        health = system.health().actors["root/a"].rate_limit
        assert health is not None
        assert health.tokens == 0.0
        assert health.per_second == 1.0
        assert health.burst == 2
        assert not third.done()
        assert seen == [1, 2]
        clock.advance(1.0)  # one token accrues: the waiting message is handled
        assert third.result().data == 3
        assert system.health().actors["root/a"].rate_limit.waiting == 0  # type: ignore[union-attr]


def test_a_message_whose_deadline_cannot_wait_is_rejected_as_rate_limited_at_once():
    clock, seen = FakeClock(), []
    limit = RateLimit(per_second=1.0, burst=1)
    tree = Supervisor("root", children=[ChildSpec("a", Counts, args=(seen,), rate_limit=limit)])
    with start(tree, clock=clock) as system:
        assert system.ask("root/a", "first", timeout=10.0).ok
        refused = system.ask("root/a", "second", timeout=0.5)  # a token is 1 s away
        assert refused.status is ExecutionStatus.REJECTED
        assert refused.reason is FailureReason.RATE_LIMITED
        assert "rate limited" in (refused.error or "")
        assert seen == ["first"]
        assert system.health().actors["root/a"].failures == {"rate_limited": 1}


def test_a_queued_message_that_can_no_longer_get_a_token_in_time_is_answered_early():
    clock = FakeClock()
    limit = RateLimit(per_second=1.0, burst=1)
    gate, entered = threading.Event(), threading.Event()

    class Blocks(Agent):
        def handle(self, message: Any) -> Any:
            if message == "busy":
                entered.set()
                gate.wait(10.0)
            return message

    tree = Supervisor(
        "root", children=[ChildSpec("a", Blocks, rate_limit=limit, message_timeout=None)]
    )
    with start(tree, clock=clock) as system:
        busy = system.ask_future("root/a", "busy", timeout=100.0)  # takes the only token
        assert entered.wait(10.0)
        # queued while the handler is busy; each fits its deadline when it is queued
        patient = system.ask_future("root/a", "patient", timeout=50.0)
        hurried = system.ask_future("root/a", "hurried", timeout=2.5)
        clock.advance(1.5)  # one token accrued (the burst is 1): it is the patient one's
        gate.set()
        assert busy.result().data == "busy"
        assert patient.result().data == "patient"
        # the next token is due at 2.5 s, hurried's deadline: answered now, not at 2.5 s
        answer = hurried.result()
        assert answer.status is ExecutionStatus.REJECTED
        assert answer.reason is FailureReason.RATE_LIMITED
        assert clock.now() < 1000.0 + 2.5


class Polite(RuleBasedAgent):
    rules = (Rule(when=lambda m: True, reply=lambda m: f"later: {m}"),)


def test_over_the_limit_the_fallback_answers():
    clock = FakeClock()
    limit = RateLimit(per_second=0.1, burst=1)
    tree = Supervisor("root", children=[ChildSpec("a", Echo, rate_limit=limit, fallback=Polite)])
    with start(tree, clock=clock) as system:
        assert system.ask("root/a", "x", timeout=5.0).data == "x"
        answer = system.ask("root/a", "y", timeout=5.0)
        assert answer.ok
        assert answer.fallback_used
        assert answer.reason is FailureReason.RATE_LIMITED
        assert answer.data == "later: y"


def test_one_limit_object_is_one_budget_shared_by_several_agents():
    clock = FakeClock()
    provider = RateLimit(per_second=1.0, burst=2)
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("a", Echo, rate_limit=provider),
            ChildSpec("b", Echo, rate_limit=provider),
            ChildSpec("c", Echo, rate_limit=RateLimit(per_second=1.0, burst=2)),  # its own
        ],
    )
    with start(tree, clock=clock) as system:
        assert system.ask("root/a", 1, timeout=0.5).ok
        assert system.ask("root/b", 2, timeout=0.5).ok
        assert system.ask("root/a", 3, timeout=0.5).reason is FailureReason.RATE_LIMITED
        assert system.ask("root/b", 4, timeout=0.5).reason is FailureReason.RATE_LIMITED
        assert system.ask("root/c", 5, timeout=0.5).ok  # an equal but separate budget
        health = system.health().actors
        assert health["root/a"].rate_limit.tokens == 0.0  # type: ignore[union-attr]
        assert health["root/c"].rate_limit.tokens == 1.0  # type: ignore[union-attr]
        assert health["root/a"].rate_limit is not None
        assert health["root/c"].rate_limit is not None


def test_tells_over_the_limit_wait_and_are_all_handled_in_order():
    clock, seen = FakeClock(), []
    limit = RateLimit(per_second=2.0, burst=1)
    tree = Supervisor("root", children=[ChildSpec("a", Counts, args=(seen,), rate_limit=limit)])
    with start(tree, clock=clock) as system:
        for i in range(5):
            system.tell("root/a", i)
        wait_until(lambda: seen == [0])
        for expected in range(1, 5):
            clock.advance(0.5)
            wait_until(lambda n=expected: len(seen) == n + 1)
        assert seen == [0, 1, 2, 3, 4]
        assert system.dead_letters() == []
