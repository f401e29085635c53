"""max_abandoned: hung handlers cannot pile up without limit.

A thread cannot be killed, so each hang leaves a thread running (spinning, perhaps) until its
handler returns. Past `max_abandoned` of them the agent is not restarted again: it stays down,
its fallback answering, with an alarm in health and logs, until one of its threads ends.
"""

from __future__ import annotations

import threading
from typing import Any

from actors import Agent, ExecutionStatus, FailureReason, Rule, RuleBasedAgent
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start
from supervisor.testing import FakeClock, capture_events, wait_until


class Entries:
    def __init__(self) -> None:
        self.count = 0
        self.cv = threading.Condition()
        self.release = threading.Event()

    def enter(self) -> None:
        with self.cv:
            self.count += 1
            self.cv.notify_all()

    def wait_for(self, n: int) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: self.count >= n, 10.0), f"{self.count} < {n}"


class HangsUntilReleased(Agent):
    def __init__(self, entries: Entries) -> None:
        self.entries = entries

    def handle(self, message: Any) -> Any:
        if message == "hang":
            self.entries.enter()
            self.entries.release.wait(30.0)
        return f"primary:{message}"


class Stand(RuleBasedAgent):
    rules = (Rule(when=lambda m: True, reply=lambda m: f"fallback:{m}"),)


def test_past_max_abandoned_the_agent_stays_down_and_its_fallback_answers_until_a_thread_ends():
    clock, entries = FakeClock(), Entries()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=100),
        children=[
            ChildSpec(
                "s",
                HangsUntilReleased,
                args=(entries,),
                message_timeout=1.0,
                max_abandoned=2,
                fallback=Stand,
            ),
            ChildSpec("neighbour", HangsUntilReleased, args=(entries,)),
        ],
    )
    try:
        with capture_events() as events, start(tree, clock=clock) as system:
            for n in (1, 2):
                pending = system.ask_future("root/s", "hang", timeout=100.0)
                entries.wait_for(n)
                clock.advance(1.0)  # the handler overruns its deadline: abandoned
                answer = pending.result()
                assert answer.fallback_used
                assert answer.reason is FailureReason.DEADLINE
            alarm = events.wait_for("agent_abandoned_limit", path="root/s")[0]
            assert alarm["level"] == "error"
            assert "isolation" in alarm["reason"]
            wait_until(lambda: system.health().actors["root/s"].state == "down")
            health = system.health().actors["root/s"]
            assert health.abandoned == 2
            assert health.alarm is not None
            assert "2 hung handlers" in health.alarm
            # down: the fallback answers at once, with the reason
            answer = system.ask("root/s", "hello", timeout=100.0)
            assert answer.data == "fallback:hello"
            assert answer.reason is FailureReason.ABANDONED_LIMIT
            assert system.ask("root/neighbour", "hi", timeout=100.0).data == "primary:hi"
            restarts = health.restarts
            # the threads end: the agent is started again and answers itself
            entries.release.set()
            events.wait_for("child_started", path="root/s", count=restarts + 1)
            wait_until(lambda: system.health().actors["root/s"].abandoned == 0)
            assert system.ask("root/s", "back", timeout=100.0).data == "primary:back"
            assert system.health().actors["root/s"].alarm is None
    finally:
        entries.release.set()


def test_without_a_fallback_a_held_agent_queues_and_answers_after_its_threads_end():
    clock, entries = FakeClock(), Entries()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=100),
        children=[
            ChildSpec(
                "s", HangsUntilReleased, args=(entries,), message_timeout=1.0, max_abandoned=1
            ),
        ],
    )
    try:
        with capture_events() as events, start(tree, clock=clock) as system:
            pending = system.ask_future("root/s", "hang", timeout=100.0)
            entries.wait_for(1)
            clock.advance(1.0)
            assert pending.result().status is ExecutionStatus.TIMEOUT
            events.wait_for("agent_abandoned_limit", path="root/s")
            queued = system.ask_future("root/s", "queued", timeout=100.0)
            assert not queued.done()
            entries.release.set()
            assert queued.result().data == "primary:queued"
    finally:
        entries.release.set()
