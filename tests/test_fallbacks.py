"""Fallback to rule-based actors whenever the primary cannot answer, and back again."""

from __future__ import annotations

from typing import Any

from actors import Agent, Rule, RuleBasedAgent
from strategies import Backoff, BreakerPolicy, OneForOne
from supervisor import ChildSpec, ExecutionStatus, FakeClock, Supervisor, start
from supervisor.testing import capture_events
from tests.agents import AlwaysCrash, CrashUntil, Echo, Flaky, Human, Switch


class SafeDefault(RuleBasedAgent):
    default = {"message": "Unable to process request", "safe": True}


class SecondOpinion(Agent):
    def __init__(self, switch: Switch) -> None:
        self.switch = switch

    def handle(self, message: Any) -> Any:
        if self.switch.failing:
            raise RuntimeError("secondary down too")
        return f"secondary:{message}"


def test_rule_based_agent_rules_and_default():
    human = Human()
    assert human.handle("I want a REFUND") == {"action": "route_to_human", "queue": "billing"}
    assert human.handle({"text": "hello"}) == {
        "action": "route_to_human",
        "reason": "agent unavailable",
    }

    class Lookup(RuleBasedAgent):
        rules = (Rule(when=lambda m: isinstance(m, int), reply=lambda m: m * 2),)
        default = staticmethod(lambda m: f"unknown:{m}")

    assert Lookup().handle(21) == 42
    assert Lookup().handle("x") == "unknown:x"


def test_fallback_answers_the_crashing_message_and_marks_it():
    with start(
        Supervisor("root", children=[ChildSpec("p", AlwaysCrash, fallback=Human)])
    ) as system:
        answer = system.ask("root/p", "refund!", timeout=5.0)
        assert answer.status is ExecutionStatus.SUCCESS
        assert answer.fallback_used
        assert answer.handled_by == "root/p#Human"
        assert answer.attempts == 1
        assert answer.data["queue"] == "billing"
        assert system.health().actors["root/p"].fallback_answers == 1


def test_fallback_answers_invalid_output():
    switch = Switch(failing=True)
    with start(
        Supervisor("root", children=[ChildSpec("p", Flaky, args=(switch,), fallback=Human)])
    ) as system:
        answer = system.ask("root/p", "x", timeout=5.0)
        assert answer.fallback_used
        assert answer.status is ExecutionStatus.SUCCESS


def test_fallback_during_open_breaker_and_traffic_returns_when_it_closes():
    clock, switch = FakeClock(), Switch(failing=True)
    tree = Supervisor(
        "root",
        children=[
            ChildSpec(
                "p",
                Flaky,
                args=(switch,),
                breaker=BreakerPolicy(fail_max=2, reset_timeout=30.0),
                fallback=Human,
            ),
        ],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        for _ in range(2):
            assert system.ask("root/p", "x", timeout=5.0).fallback_used
        calls = switch.calls
        during = system.ask("root/p", "x", timeout=5.0)
        assert during.fallback_used
        assert switch.calls == calls  # the open breaker kept it from the primary
        assert "circuit open" in events.matching("fallback_engaged")[-1]["reason"]
        health = system.health()
        assert health.actors["root/p"].degraded
        assert health.state == "degraded"
        switch.failing = False
        clock.advance(30.0)
        back = system.ask("root/p", "x", timeout=5.0)
        assert not back.fallback_used
        assert back.handled_by == "root/p"
        assert system.health().state == "running"


def test_fallback_during_restart_backoff_then_primary_again():
    clock, switch = FakeClock(), Switch(failing=True)
    tree = Supervisor(
        "root",
        strategy=OneForOne(
            max_restarts=10,
            backoff=Backoff(min_backoff=20.0, max_backoff=20.0, random_factor=0.0),
        ),
        children=[ChildSpec("p", CrashUntil, args=(switch,), fallback=Human)],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        assert system.ask("root/p", "x", timeout=5.0).fallback_used
        assert system.health().actors["root/p"].state == "backoff"
        switch.failing = False
        calls = switch.calls
        during = system.ask("root/p", "refund", timeout=5.0)
        assert during.fallback_used
        assert during.data["queue"] == "billing"
        assert switch.calls == calls
        clock.advance(20.0)
        events.wait_for("child_started", path="root/p", count=2)
        assert system.ask("root/p", "x", timeout=5.0).data == "primary:x"


def test_fallback_keeps_answering_after_escalation_and_when_the_root_failed():
    clock = FakeClock()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=0),
        children=[
            ChildSpec("desk", AlwaysCrash, fallback=Human),
            ChildSpec("plain", Echo),
        ],
    )
    with start(tree, clock=clock) as system:
        first = system.ask("root/desk", "help", timeout=5.0)
        assert first.fallback_used
        assert system.state == "failed"
        for _ in range(3):
            degraded = system.ask("root/desk", "refund", timeout=5.0)
            assert degraded.status is ExecutionStatus.SUCCESS
            assert degraded.fallback_used
            assert degraded.handled_by == "root/desk#Human"
        nothing = system.ask("root/plain", "hi", timeout=5.0)
        assert nothing.status is ExecutionStatus.FAILURE
        health = system.health()
        assert health.actors["root/desk"].degraded
        assert health.actors["root/desk#Human"].state == "running"
        assert health.actors["root/desk#Human"].kind == "fallback"


def test_fallback_after_a_subtree_escalates_and_primary_returns_after_its_restart():
    clock, switch = FakeClock(), Switch(failing=True)
    tree = Supervisor(
        "root",
        strategy=OneForOne(
            max_restarts=5,
            backoff=Backoff(min_backoff=50.0, max_backoff=50.0, random_factor=0.0),
        ),
        children=[
            Supervisor(
                "team",
                strategy=OneForOne(max_restarts=0),
                children=[
                    ChildSpec("p", CrashUntil, args=(switch,), fallback=Human),
                ],
            ),
        ],
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        assert system.ask("root/team/p", "x", timeout=5.0).fallback_used
        events.wait_for("supervisor_escalated", path="root/team")
        # root armed its backoff timer before announcing the restart: only now may time move
        events.wait_for("child_restarting", path="root/team")
        switch.failing = False
        during = system.ask("root/team/p", "x", timeout=5.0)
        assert during.fallback_used  # team is waiting out root's backoff
        clock.advance(50.0)
        events.wait_for("child_started", path="root/team", count=2)
        assert system.ask("root/team/p", "x", timeout=5.0).data == "primary:x"


def test_a_fallback_chain_tries_each_in_order_down_to_the_safe_default():
    primary, secondary = Switch(failing=True), Switch(failing=True)
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=100),
        children=[
            ChildSpec(
                "p",
                CrashUntil,
                args=(primary,),
                fallback=[
                    ChildSpec("secondary", SecondOpinion, args=(secondary,)),
                    SafeDefault,
                ],
            ),
        ],
    )
    with start(tree) as system:
        answer = system.ask("root/p", "q", timeout=5.0)
        assert answer.handled_by == "root/p#SafeDefault"
        assert answer.data == {"message": "Unable to process request", "safe": True}
        secondary.failing = False
        answer = system.ask("root/p", "q", timeout=5.0)
        assert answer.handled_by == "root/p#secondary"
        assert answer.data == "secondary:q"
        primary.failing = False
        assert system.ask("root/p", "q", timeout=5.0).handled_by == "root/p"


def test_when_the_whole_chain_fails_the_caller_gets_every_reason():
    class Broken(RuleBasedAgent):
        def handle(self, message: Any) -> Any:
            raise RuntimeError("rules broken")

    tree = Supervisor("root", children=[ChildSpec("p", AlwaysCrash, fallback=Broken)])
    with start(tree) as system:
        answer = system.ask("root/p", "q", timeout=5.0)
        assert answer.status is ExecutionStatus.FAILURE
        assert "root/p: ValueError" in (answer.error or "")
        assert "root/p#Broken: RuntimeError: rules broken" in (answer.error or "")
        # the fallback's crash did not count against the primary's budget
        assert system.health().actors["root"].budget_used == 1


def test_fallback_knows_why_it_was_asked():
    class Explains(RuleBasedAgent):
        def handle(self, message: Any) -> Any:
            return {"why": self.context.fallback_reason}

    with start(
        Supervisor("root", children=[ChildSpec("p", AlwaysCrash, fallback=Explains)])
    ) as system:
        assert "ValueError" in system.ask("root/p", "q", timeout=5.0).data["why"]
