"""Per-child circuit breakers: opening, one half-open trial, closing; under concurrency."""

from __future__ import annotations

import concurrent.futures
import threading
from types import SimpleNamespace

from strategies import BreakerPolicy, OneForOne
from supervisor import BreakerState, ChildSpec, ExecutionStatus, FakeClock, Supervisor, start
from supervisor.delivery._breaker import SlotBreaker
from supervisor.testing import capture_events
from tests.agents import CrashUntil, Echo, Flaky, Gate, Switch


def flaky_tree(switch: Switch, gate: Gate | None = None, **extra: object) -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=100),
        children=[
            ChildSpec(
                "p",
                Flaky,
                args=(switch, gate),
                breaker=BreakerPolicy(fail_max=3, reset_timeout=60.0),
                **extra,
            ),
            ChildSpec("echo", Echo),
        ],
    )


def test_breaker_opens_after_fail_max_rejects_at_once_then_one_trial_closes_it():
    clock, switch = FakeClock(), Switch(failing=True)
    with capture_events() as events, start(flaky_tree(switch), clock=clock) as system:
        for _ in range(3):
            assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.INVALID_OUTPUT
        health = system.health().actors["root/p"].breaker
        assert health is not None
        assert health.state == "open"
        assert health.failures == 3
        assert health.opened_at is not None
        assert health.reopens_in == 60.0
        rejected = system.ask("root/p", "x", timeout=5.0)
        assert rejected.status is ExecutionStatus.REJECTED
        assert "circuit open after 3 consecutive failures" in (rejected.error or "")
        assert switch.calls == 3  # the rejected ask never reached the primary
        clock.advance(59.0)
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.REJECTED
        clock.advance(1.0)
        switch.failing = False
        trial = system.ask("root/p", "x", timeout=5.0)
        assert trial.status is ExecutionStatus.SUCCESS
        assert system.health().actors["root/p"].breaker.state == "closed"  # type: ignore[union-attr]
        assert system.ask("root/p", "y", timeout=5.0).data == "primary:y"
        changes = [(e["old"], e["new"]) for e in events.matching("breaker_state_changed")]
        assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_trial_opens_the_breaker_again():
    clock, switch = FakeClock(), Switch(failing=True)
    with start(flaky_tree(switch), clock=clock) as system:
        for _ in range(3):
            system.ask("root/p", "x", timeout=5.0)
        clock.advance(60.0)
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.INVALID_OUTPUT
        breaker = system.health().actors["root/p"].breaker
        assert breaker is not None
        assert breaker.state == "open"
        assert breaker.opens_total == 2
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.REJECTED


def test_crashes_count_and_the_breaker_survives_restarts():
    clock, switch = FakeClock(), Switch(failing=True)
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=100),
        children=[
            ChildSpec(
                "p",
                CrashUntil,
                args=(switch,),
                breaker=BreakerPolicy(fail_max=2, reset_timeout=5.0),
            ),
        ],
    )
    with start(tree, clock=clock) as system:
        system.ask("root/p", "x", timeout=5.0)
        system.ask("root/p", "x", timeout=5.0)
        assert system.health().actors["root/p"].restarts == 2
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.REJECTED


def test_exactly_fail_max_concurrent_failures_reach_the_primary():
    clock, switch = FakeClock(), Switch(failing=True)
    with (
        start(flaky_tree(switch), clock=clock) as system,
        concurrent.futures.ThreadPoolExecutor(16) as pool,
    ):
        results = list(pool.map(lambda i: system.ask("root/p", i, timeout=10.0), range(16)))
    statuses = [r.status for r in results]
    assert statuses.count(ExecutionStatus.INVALID_OUTPUT) == 3
    assert statuses.count(ExecutionStatus.REJECTED) == 13
    assert switch.calls == 3


def test_half_open_lets_exactly_one_trial_through_under_concurrency():
    clock, switch, gate = FakeClock(), Switch(failing=True), Gate()
    with start(flaky_tree(switch, gate), clock=clock) as system:
        for _ in range(3):
            system.ask("root/p", "x", timeout=5.0)
        clock.advance(60.0)
        switch.failing = False
        calls_before = switch.calls
        trial = system.ask_future("root/p", "block", timeout=100.0)
        gate.wait_entered()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            others = list(pool.map(lambda i: system.ask("root/p", i, timeout=10.0), range(16)))
        assert [r.status for r in others] == [ExecutionStatus.REJECTED] * 16
        assert all("half-open" in (r.error or "") for r in others)
        gate.release()
        assert trial.result().status is ExecutionStatus.SUCCESS
        assert switch.calls == calls_before + 1
        assert system.health().actors["root/p"].breaker.state == "closed"  # type: ignore[union-attr]


def test_trial_that_expires_while_queued_frees_the_trial_slot():
    """A crash-looping primary with restart backoff and a breaker: the half-open trial waits
    in the queue (the primary is still backing off), its deadline passes, and the next
    caller becomes the trial instead of being rejected forever."""
    from strategies import Backoff

    clock, switch = FakeClock(), Switch(failing=True)
    tree = Supervisor(
        "root",
        strategy=OneForOne(
            max_restarts=100,
            backoff=Backoff(min_backoff=100.0, max_backoff=100.0, random_factor=0.0),
        ),
        children=[
            ChildSpec(
                "p",
                CrashUntil,
                args=(switch,),
                breaker=BreakerPolicy(fail_max=1, reset_timeout=10.0),
            ),
        ],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.FAILURE
        assert system.health().actors["root/p"].state == "backoff"
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.REJECTED
        clock.advance(10.0)
        first_trial = system.ask_future("root/p", "trial-1", timeout=5.0)
        assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.REJECTED
        clock.advance(6.0)  # trial-1 expires while still queued behind the backoff
        assert first_trial.result().status is ExecutionStatus.TIMEOUT
        switch.failing = False
        second_trial = system.ask_future("root/p", "trial-2", timeout=500.0)
        clock.advance(100.0)  # backoff over: the replacement drains its queue
        answer = second_trial.result()
        assert answer.status is ExecutionStatus.SUCCESS
        assert answer.data == "primary:trial-2"
        events.wait_for("breaker_state_changed", new="closed")
        assert [d.message for d in system.dead_letters(reason="deadline_expired")] == ["trial-1"]


def test_slot_breaker_admits_exactly_fail_max_then_one_trial_when_callers_hold_a_lock():
    """The SlotBreaker's contract: its caller holds the slot's lock (as AgentSlot does); under
    that lock, 16 racing threads get exactly fail_max admissions, then exactly one trial."""
    clock, changes = FakeClock(), []
    breaker = SlotBreaker(
        BreakerPolicy(fail_max=5, reset_timeout=1.0),
        clock,
        "x",
        lambda old, new: changes.append((old, new)),
    )
    lock = threading.Lock()
    admitted: list[int] = []
    start_line = threading.Barrier(16)

    def caller(i: int) -> None:
        env = SimpleNamespace(done=False, deadline=None, trial=False, started_at=None)
        start_line.wait()
        with lock:
            if breaker.admit(env) is None:  # type: ignore[arg-type]
                admitted.append(i)
                breaker.record_failure(env, RuntimeError("x"))  # type: ignore[arg-type]

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 5
    assert breaker.state is BreakerState.OPEN
    clock.advance(1.0)
    trials: list[int] = []
    start_line = threading.Barrier(16)

    def trial_caller(i: int) -> None:
        env = SimpleNamespace(done=False, deadline=None, trial=False, started_at=None)
        start_line.wait()
        with lock:
            if breaker.admit(env) is None:  # type: ignore[arg-type]
                trials.append(i)

    threads = [threading.Thread(target=trial_caller, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(trials) == 1
    assert breaker.state is BreakerState.HALF_OPEN


def test_breaker_times_do_not_depend_on_the_local_timezone(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        clock, switch = FakeClock(), Switch(failing=True)
        with start(flaky_tree(switch), clock=clock) as system:
            for _ in range(3):
                system.ask("root/p", "x", timeout=5.0)
            breaker = system.health().actors["root/p"].breaker
            assert breaker is not None
            assert breaker.reopens_in == 60.0
            clock.advance(60.0)
            switch.failing = False
            assert system.ask("root/p", "x", timeout=5.0).status is ExecutionStatus.SUCCESS
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
