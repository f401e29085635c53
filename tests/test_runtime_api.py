"""The public API of a running tree: ask/tell, results, caller errors, health, lifecycle order."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from actors import Agent
from strategies import OneForOne, RestForOne
from supervisor import (
    ChildSpec,
    ExecutionResult,
    ExecutionStatus,
    ResultError,
    Supervisor,
    SystemNotRunningError,
    UnknownPathError,
    start,
)
from supervisor.testing import capture_events
from tests.agents import Echo, Lifecycle


def readme_tree() -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=3, within_seconds=5.0),
        children=[
            ChildSpec("echo", Echo),
            Supervisor(
                "team", strategy=RestForOne(), children=[ChildSpec("a", Echo), ChildSpec("b", Echo)]
            ),
        ],
    )


def test_readme_example():
    with start(readme_tree()) as system:
        result = system.ask("root/echo", "hi", timeout=2.0)
        assert result.status is ExecutionStatus.SUCCESS
        assert result.data == "hi"
        assert result.handled_by == "root/echo"
        assert result.attempts == 1
        assert not result.fallback_used
        system.tell("root/team/a", "fire and forget")
        assert system.ask("root/team/b", {"x": 1}, timeout=2.0).unwrap() == {"x": 1}
        health = system.health()
        assert set(health.actors) >= {
            "root",
            "root/echo",
            "root/team",
            "root/team/a",
            "root/team/b",
        }
        assert health.state == "running"
        assert health.healthy


def test_health_snapshot_fields_and_json():
    with start(readme_tree()) as system:
        system.ask("root/echo", 1, timeout=2.0)
        health = system.health()
        echo = health.actors["root/echo"]
        assert echo.kind == "agent"
        assert echo.state == "running"
        assert echo.restarts == 0
        assert echo.last_error is None
        assert echo.mailbox_depth == 0
        assert echo.started_at is not None
        assert echo.processed == 1
        team = health.actors["root/team"]
        assert team.kind == "supervisor"
        assert team.children == ["root/team/a", "root/team/b"]
        assert team.strategy == "rest_for_one"
        text = health.model_dump_json()
        assert '"root/team/a"' in text
        nested = health.tree()
        assert [c["path"] for c in nested["tree"]["children"]] == ["root/echo", "root/team"]


def test_unwrap_raises_result_error_for_failures():
    failed = ExecutionResult(status=ExecutionStatus.FAILURE, error="nope", handled_by="root/x")
    with pytest.raises(ResultError, match="failure \\(handled by root/x\\): nope") as info:
        failed.unwrap()
    assert info.value.result is failed


def test_unknown_path_is_a_caller_error_with_a_hint():
    with start(readme_tree()) as system:
        with pytest.raises(UnknownPathError, match="did you mean 'root/team/a'"):
            system.ask("root/a", "hi", timeout=1.0)
        with pytest.raises(UnknownPathError, match="is a supervisor"):
            system.ask("root/team", "hi", timeout=1.0)
        with pytest.raises(UnknownPathError):
            system.tell("nope", "hi")


def test_bad_timeout_is_a_caller_error():
    with start(readme_tree()) as system:
        with pytest.raises(ValueError, match="positive"):
            system.ask("root/echo", "hi", timeout=0)
        with pytest.raises(ValueError, match="positive"):
            system.ask("root/echo", "hi", timeout=-1)


def test_asking_a_stopped_system_raises():
    system = start(readme_tree())
    system.shutdown()
    with pytest.raises(SystemNotRunningError):
        system.ask("root/echo", "hi", timeout=1.0)
    with pytest.raises(SystemNotRunningError):
        system.tell("root/echo", "hi")
    system.shutdown()  # idempotent


def test_start_rejects_things_that_are_not_trees():
    with pytest.raises(TypeError, match="Supervisor tree"):
        start(ChildSpec("x", Echo))  # type: ignore[arg-type]


def test_children_start_in_order_and_stop_in_reverse():
    journal: list[str] = []
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("one", Lifecycle, args=(journal, "one")),
            Supervisor(
                "mid",
                children=[
                    ChildSpec("two", Lifecycle, args=(journal, "two")),
                    ChildSpec("three", Lifecycle, args=(journal, "three")),
                ],
            ),
            ChildSpec("four", Lifecycle, kwargs={"journal": journal, "name": "four"}),
        ],
    )
    with start(tree):
        assert journal == ["start:one", "start:two", "start:three", "start:four"]
    assert journal[4:] == ["stop:four", "stop:three", "stop:two", "stop:one"]


def test_shutdown_lets_a_busy_child_finish_its_current_message():
    from tests.agents import Blocking, Gate

    gate = Gate()
    system = start(Supervisor("root", children=[ChildSpec("slow", Blocking, args=(gate,))]))
    pending = system.ask_future("root/slow", "block", timeout=10.0)
    queued = system.ask_future("root/slow", "after", timeout=10.0)
    gate.wait_entered()
    import threading

    with capture_events() as events:
        stopper = threading.Thread(target=system.shutdown)
        stopper.start()
        events.wait_for("child_stopping", path="root/slow")
    gate.release()
    stopper.join(10)
    assert pending.result().status is ExecutionStatus.SUCCESS
    after = queued.result()
    assert after.status is ExecutionStatus.FAILURE
    assert "shut down" in (after.error or "")


def test_events_have_the_same_keys():
    with capture_events() as events, start(readme_tree()):
        events.wait_for("child_started", count=4)
    started = events.matching("child_started")
    for event in started:
        assert {"supervisor", "child", "path", "agent_id", "reason"} <= set(event)
    assert [e["path"] for e in started if e["supervisor"] == "root"] == ["root/echo", "root/team"]


def test_agent_context_is_not_available_in_init():
    from actors import ContextNotAttachedError

    class Eager(Agent):
        def __init__(self) -> None:
            self.path = self.context.path

        def handle(self, message: object) -> object:
            return message

    with pytest.raises(ContextNotAttachedError):
        Eager()


def test_input_model_validation_gives_invalid_input_without_crashing():
    from pydantic import BaseModel

    class Ticket(BaseModel):
        id: int
        text: str

    class Desk(Agent):
        input_model = Ticket

        def handle(self, message: Ticket) -> str:
            return f"{message.id}:{message.text}"

    with (
        capture_events() as events,
        start(Supervisor("root", children=[ChildSpec("desk", Desk)])) as system,
    ):
        bad = system.ask("root/desk", {"id": "x"}, timeout=2.0)
        assert bad.status is ExecutionStatus.INVALID_INPUT
        assert "id" in (bad.error or "")
        assert "text" in (bad.error or "")
        good = system.ask("root/desk", {"id": 7, "text": "hi"}, timeout=2.0)
        assert good.data == "7:hi"
        assert system.health().actors["root/desk"].restarts == 0
    assert not events.matching("agent_crashed")


def test_childspec_requires_a_factory():
    with pytest.raises(ValidationError):
        ChildSpec("x")  # type: ignore[call-arg]
