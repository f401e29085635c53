"""The runtime survives its own surroundings: broken log sinks, closed log streams, and a bug
inside a supervisor (it escalates like a crashed OTP supervisor instead of hanging)."""

from __future__ import annotations

import io
from typing import Any

import structlog

from actors._events import dropped_events
from supervisor import ChildSpec, ExecutionStatus, Supervisor, configure_logging, start, subscribe
from supervisor.supervision._supervisor_actor import SupervisorActor
from supervisor.testing import capture_events
from tests.agents import Counter, Echo


def test_a_failing_event_sink_does_not_break_the_runtime():
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    unsubscribe = subscribe(broken)
    try:
        before = dropped_events()
        with start(Supervisor("root", children=[ChildSpec("c", Counter)])) as system:
            system.ask("root/c", "boom", timeout=5.0)
            assert system.ask("root/c", "x", timeout=5.0).data == 1
        assert dropped_events() > before
    finally:
        unsubscribe()


def test_logging_to_a_closed_stream_does_not_break_the_runtime():
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    stream.close()
    with start(Supervisor("root", children=[ChildSpec("c", Counter)])) as system:
        assert system.ask("root/c", "boom", timeout=5.0).status is ExecutionStatus.FAILURE
        assert system.ask("root/c", "x", timeout=5.0).data == 1
    structlog.reset_defaults()


def test_a_supervisor_that_hits_a_bug_escalates_and_its_parent_restarts_it(monkeypatch):
    original = SupervisorActor._plan
    calls = {"n": 0}

    def buggy_plan(self: SupervisorActor, *args: Any) -> None:
        if self.node.path == "root/sub" and calls["n"] == 0:
            calls["n"] += 1
            raise KeyError("bug in the supervisor")
        original(self, *args)

    monkeypatch.setattr(SupervisorActor, "_plan", buggy_plan)
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("echo", Echo),
            Supervisor("sub", children=[ChildSpec("c", Counter)]),
        ],
    )
    with capture_events() as events, start(tree) as system:
        system.ask("root/sub/c", "boom", timeout=5.0)
        crashed = events.wait_for("supervisor_crashed", path="root/sub")
        assert "KeyError" in crashed[0]["reason"]
        events.wait_for("child_started", path="root/sub", count=2)
        assert system.ask("root/sub/c", "x", timeout=5.0).data == 1
        assert system.ask("root/echo", "still", timeout=5.0).data == "still"
        assert system.state == "running"
