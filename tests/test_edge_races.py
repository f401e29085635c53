"""Regressions for races and edges found in review: each test failed before its fix."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from actors import Agent, ExecutionStatus, FailureReason, RuleBasedAgent, Tool, ToolGuard
from actors.llm import ToolCall
from strategies import Backoff, BreakerPolicy, OneForAll, OneForOne
from supervisor import (
    ChildSpec,
    FakeClock,
    Supervisor,
    SupervisorUnavailableError,
    UnknownPathError,
    start,
)
from supervisor.hosts import _host
from supervisor.testing import capture_events, wait_until
from tests.agents import AlwaysCrash, Echo, Gate


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


class RaisesUnprintable(Agent):
    def handle(self, message: Any) -> Any:
        if message == "bad":
            raise Unprintable
        return message


def test_an_exception_that_cannot_be_printed_still_crashes_cleanly():
    tree = Supervisor("root", children=[ChildSpec("a", RaisesUnprintable, message_timeout=None)])
    with start(tree) as system:
        bad = system.ask("root/a", "bad", timeout=5.0)
        assert bad.status is ExecutionStatus.FAILURE
        assert "unprintable" in (bad.error or "")
        assert system.ask("root/a", "after", timeout=5.0).data == "after"


def test_an_async_caller_that_gave_up_and_closed_its_loop_does_not_stall_the_agent():
    gate = Gate()

    class Slow(Agent):
        def handle(self, message: Any) -> Any:
            if message == "slow":
                gate.entered.set()
                gate.opened.wait(10)
            return message

    with start(Supervisor("root", children=[ChildSpec("a", Slow)])) as system:

        async def impatient() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(system.ask_async("root/a", "slow", timeout=5.0), 0.05)

        asyncio.run(impatient())  # its loop is closed now
        gate.wait_entered()
        gate.release()  # the agent answers into a closed loop
        for i in range(3):
            assert system.ask("root/a", i, timeout=5.0).data == i
        assert system.health().actors["root/a"].restarts == 0


def test_stop_child_wins_over_a_sibling_group_restart():
    gate = Gate()

    class Busy(Agent):
        def handle(self, message: Any) -> Any:
            gate.entered.set()
            gate.opened.wait(10)
            return message

    tree = Supervisor(
        "root", strategy=OneForAll(max_restarts=10), children=[ChildSpec("c", AlwaysCrash)]
    )
    with capture_events() as events, start(tree) as system:
        system.start_child("root", ChildSpec("b", Busy))
        pending = system.ask_future("root/b", "work", timeout=10.0)
        gate.wait_entered()
        stopper = threading.Thread(
            target=system.stop_child, args=("root/b",), kwargs={"timeout": 10.0}
        )
        stopper.start()
        events.wait_for("child_stopping", path="root/b")
        assert system.ask("root/c", "x", timeout=5.0).status is ExecutionStatus.FAILURE
        gate.release()
        stopper.join(10)
        assert not stopper.is_alive()
        assert pending.result().status is ExecutionStatus.SUCCESS
        events.wait_for("child_removed", path="root/b")
        assert "root/b" not in system.paths()
        with pytest.raises(UnknownPathError):
            system.ask("root/b", "again", timeout=1.0)


def test_a_retry_does_not_reach_the_primary_while_its_breaker_is_open():
    calls: list[str] = []

    class Crash(Agent):
        def handle(self, message: Any) -> Any:
            calls.append(message)
            raise RuntimeError("boom")

    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10),
        children=[
            ChildSpec("c", Crash, retries=2, breaker=BreakerPolicy(fail_max=1, reset_timeout=60.0)),
        ],
    )
    with start(tree, clock=FakeClock()) as system:
        result = system.ask("root/c", "x", timeout=5.0)
        assert result.status is ExecutionStatus.REJECTED
        assert result.reason is FailureReason.BREAKER_OPEN
        assert calls == ["x"]


def test_a_message_is_never_answered_twice_when_a_stop_races_its_handler(monkeypatch):
    gate = Gate()
    seen_by_fallback: list[Any] = []

    class Slow(Agent):
        def handle(self, message: Any) -> Any:
            gate.entered.set()
            gate.opened.wait(10)
            return f"primary:{message}"

    class Fallback(RuleBasedAgent):
        def handle(self, message: Any) -> Any:
            seen_by_fallback.append(message)
            return "fallback"

    tree = Supervisor(
        "root", children=[ChildSpec("p", Slow, shutdown_timeout=0.2, fallback=Fallback)]
    )
    with start(tree) as system:
        pending = system.ask_future("root/p", "job", timeout=10.0)
        original = _host.ThreadHost.abandon

        def abandon_after_the_handler_answered(self: _host.ThreadHost) -> Any:
            gate.release()  # the handler finishes right when the supervisor gives up on it
            wait_until(pending.done)
            return original(self)

        monkeypatch.setattr(_host.ThreadHost, "abandon", abandon_after_the_handler_answered)
        gate.wait_entered()
        system.stop_child("root/p", timeout=10.0)
        assert pending.result().data == "primary:job"
    assert seen_by_fallback == []


def test_a_dropped_tell_is_one_dead_letter():
    gate = Gate()

    class Busy(Agent):
        def handle(self, message: Any) -> Any:
            if message == "block":
                gate.entered.set()
                gate.opened.wait(10)
            return message

    tree = Supervisor(
        "root", children=[ChildSpec("w", Busy, mailbox_size=1, overflow="drop_oldest")]
    )
    with start(tree) as system:
        busy = system.ask_future("root/w", "block", timeout=10.0)
        gate.wait_entered()
        system.tell("root/w", "t1")
        system.tell("root/w", "t2")  # drops t1
        assert [(d.message, d.reason) for d in system.dead_letters()] == [
            ("t1", "mailbox_overflow")
        ]
        gate.release()
        busy.result()


def test_async_agents_ask_each_other_without_blocking_the_shared_loop():
    class B(Agent):
        async def handle(self, message: Any) -> Any:
            return f"b:{message}"

    class A(Agent):
        async def handle(self, message: Any) -> Any:
            if message == "blocking":
                return self.context.ask("root/b", "x").status.value  # not allowed on the loop
            answer = await self.context.ask_async("root/b", message, timeout=5.0)
            return answer.data

    with start(Supervisor("root", children=[ChildSpec("a", A), ChildSpec("b", B)])) as system:
        assert system.ask("root/a", "hi", timeout=5.0).data == "b:hi"
        wrong = system.ask("root/a", "blocking", timeout=5.0)
        assert wrong.status is ExecutionStatus.FAILURE
        assert "ask_async" in (wrong.error or "")


@pytest.mark.parametrize("timeout", [float("inf"), 1e12, float("nan")])
def test_absurd_timeouts_are_refused_before_anything_is_sent(timeout):
    with start(Supervisor("root", children=[ChildSpec("e", Echo)])) as system:
        with pytest.raises(ValueError, match="timeout"):
            system.ask("root/e", "x", timeout=timeout)
        assert system.health().actors["root/e"].processed == 0


def test_messages_waiting_for_a_retry_are_answered_at_shutdown():
    clock = FakeClock()
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10),
        children=[
            ChildSpec(
                "c",
                AlwaysCrash,
                retries=2,
                backoff=Backoff(min_backoff=100.0, max_backoff=100.0, random_factor=0.0),
            ),
        ],
    )
    system = start(tree, clock=clock)
    with capture_events() as events:
        system.tell("root/c", "T")
        pending = system.ask_future("root/c", "A", timeout=1000.0)
        events.wait_for("message_retrying", count=2)
    system.shutdown()
    answer = pending.result()
    assert answer.status is ExecutionStatus.FAILURE
    assert "shut down" in (answer.error or "")
    assert [d.message for d in system.dead_letters()] == ["T"]


def test_errors_returned_by_agents_are_redacted_in_health_and_results():
    from actors import ExecutionResult

    class Leaky(Agent):
        def handle(self, message: Any) -> Any:
            return ExecutionResult(
                status=ExecutionStatus.FAILURE,
                error="upstream 401 for Authorization: Bearer abcdefghijklmnop123",
            )

    with start(Supervisor("root", children=[ChildSpec("a", Leaky)])) as system:
        result = system.ask("root/a", "x", timeout=5.0)
        health = system.health().actors["root/a"]
    assert "abcdefghijklmnop123" not in (result.error or "")
    assert "abcdefghijklmnop123" not in (health.last_error or "")


def test_a_sibling_that_crashes_while_waiting_for_its_group_restart_restarts_once():
    gate = Gate()
    starts: dict[str, int] = {}

    class Counted(Agent):
        def __init__(self, name: str) -> None:
            self.name = name
            starts[name] = starts.get(name, 0) + 1

        def handle(self, message: Any) -> Any:
            if message == "crash":
                raise RuntimeError(f"boom {self.name}")
            if message == "slow":
                gate.entered.set()
                gate.opened.wait(10)
            return message

    tree = Supervisor(
        "root",
        strategy=OneForAll(max_restarts=10),
        children=[ChildSpec(n, Counted, args=(n,)) for n in ("a", "b", "c")],
    )
    with capture_events() as events, start(tree) as system:
        slow = system.ask_future("root/c", "slow", timeout=10.0)
        gate.wait_entered()
        system.ask("root/a", "crash", timeout=5.0)  # group restart: c (busy) stops first
        system.ask("root/b", "crash", timeout=5.0)  # b crashes while waiting for its turn
        gate.release()
        slow.result()
        events.wait_for("child_started", path="root/c", count=2)
        assert system.ask("root/b", "hi", timeout=5.0).data == "hi"
        assert starts["b"] == 2  # the first start, and one restart


def test_start_and_stop_child_on_a_supervisor_that_gave_up_fail_at_once():
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=0),
        children=[
            ChildSpec("w", AlwaysCrash),
            ChildSpec("e", Echo),
        ],
    )
    with start(tree, clock=FakeClock()) as system:
        system.ask("root/w", "x", timeout=5.0)
        assert system.state == "failed"
        with pytest.raises(SupervisorUnavailableError, match="failed"):
            system.start_child("root", ChildSpec("n", Echo), timeout=30.0)
        with pytest.raises(SupervisorUnavailableError):
            system.stop_child("root/e", timeout=30.0)


def test_the_tool_guard_refuses_blank_targets_and_absurd_nesting():
    from pydantic import BaseModel

    class Args(BaseModel):
        action: str
        target: str | None = None

    guard = ToolGuard(
        [
            Tool(
                "manage",
                lambda a: a,
                Args,
                dangerous=lambda a: a.action == "delete",
                on_dangerous="allow",
            )
        ]
    )
    blank = guard.check(
        ToolCall(id="1", name="manage", arguments={"action": "delete", "target": "   "})
    )
    assert getattr(blank, "kind", None) == "missing_target"
    deep = guard.check(ToolCall(id="2", name="manage", arguments="[" * 100_000 + "]" * 100_000))
    assert getattr(deep, "kind", None) == "bad_arguments"
