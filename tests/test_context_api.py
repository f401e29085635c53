"""What an agent reaches through self.context: heartbeats, the time left, growing the tree, and
asks that would wait on themselves."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from actors import Agent, ExecutionStatus, FailureReason
from supervisor import (
    ChildSpec,
    HivekeeperError,
    Supervisor,
    System,
    UnknownPathError,
    start,
)
from supervisor.testing import FakeClock

from .agents import Echo

# -- an ask of one's own path through the System object (not the context) ------------------


class AsksThroughTheSystem(Agent):
    """Holds the System itself (as user code under `hivekeeper run` does) and asks `target`."""

    def __init__(self, box: list[System], target: str) -> None:
        self.box = box
        self.target = target

    def handle(self, message: Any) -> Any:
        answer = self.box[0].ask(self.target, message, timeout=20.0)
        return {"status": answer.status.value, "reason": answer.reason}


def test_system_ask_of_its_own_path_from_inside_its_handler_is_answered_at_once_as_a_cycle():
    box: list[System] = []
    tree = Supervisor("root", children=[ChildSpec("a", AsksThroughTheSystem, args=(box, "root/a"))])
    with start(tree) as system:
        box.append(system)
        answer = system.ask("root/a", "x", timeout=30.0)
        assert answer.ok
        assert answer.data == {"status": "timeout", "reason": FailureReason.ASK_CYCLE}


def test_a_cycle_through_the_system_object_and_a_context_ask_is_seen():
    box: list[System] = []

    class AsksBack(Agent):
        def handle(self, message: Any) -> Any:
            return self.context.ask("root/a", message, timeout=20.0).reason

    tree = Supervisor(
        "root",
        children=[
            ChildSpec("a", AsksThroughTheSystem, args=(box, "root/b")),
            ChildSpec("b", AsksBack),
        ],
    )
    with start(tree) as system:
        box.append(system)
        answer = system.ask("root/a", "x", timeout=30.0)
        assert answer.data == {"status": "success", "reason": None}
        assert system.ask("root/b", "direct", timeout=30.0).ok  # no cycle when asked directly


# -- heartbeats ---------------------------------------------------------------------------


class Streams(Agent):
    """Makes progress for 3 s of fake time, in 0.6 s steps, with a handler deadline of 1 s."""

    def __init__(self, clock: FakeClock, beat: bool, stuck: threading.Event) -> None:
        self.clock = clock
        self.beat = beat
        self.stuck = stuck

    def handle(self, message: Any) -> Any:
        for _ in range(5):
            if self.beat:
                self.context.heartbeat()
            self.clock.advance(0.6)
        if not self.beat:
            self.stuck.wait(10.0)  # stays busy until the test saw the deadline answer
        return "streamed"


def _streaming_tree(clock: FakeClock, beat: bool, stuck: threading.Event) -> Supervisor:
    spec = ChildSpec("s", Streams, args=(clock, beat, stuck), message_timeout=1.0)
    return Supervisor("root", children=[spec])


def test_a_handler_that_heartbeats_outlives_its_message_timeout():
    clock, stuck = FakeClock(), threading.Event()
    with start(_streaming_tree(clock, True, stuck), clock=clock) as system:
        answer = system.ask("root/s", "go", timeout=100.0)
        assert answer.ok, answer.error
        assert answer.data == "streamed"
        health = system.health().actors["root/s"]
        assert health.restarts == 0
        assert health.last_heartbeat is not None


def test_without_heartbeats_the_same_handler_overruns_its_deadline():
    clock, stuck = FakeClock(), threading.Event()
    try:
        with start(_streaming_tree(clock, False, stuck), clock=clock) as system:
            answer = system.ask("root/s", "go", timeout=100.0)
            assert answer.status is ExecutionStatus.TIMEOUT
            assert answer.reason is FailureReason.DEADLINE
    finally:
        stuck.set()


def test_a_heartbeat_outside_a_handler_is_harmless():
    class BeatsAtStart(Agent):
        def on_start(self) -> None:
            self.context.heartbeat()
            self.left_at_start = self.context.time_left

        def handle(self, message: Any) -> Any:
            return self.left_at_start

    with start(Supervisor("root", children=[ChildSpec("b", BeatsAtStart)])) as system:
        answer = system.ask("root/b", "x", timeout=10.0)
        assert answer.ok
        assert answer.data is None


# -- the time left ------------------------------------------------------------------------


class TellsTimeLeft(Agent):
    def handle(self, message: Any) -> Any:
        return self.context.time_left


def test_time_left_is_the_nearer_of_the_handler_and_the_caller_deadlines():
    clock = FakeClock()
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("short_handler", TellsTimeLeft, message_timeout=2.0),
            ChildSpec("no_limit", TellsTimeLeft, message_timeout=None),
        ],
    )
    with start(tree, clock=clock) as system:
        assert system.ask("root/short_handler", "x", timeout=100.0).data == 2.0
        assert system.ask("root/short_handler", "x", timeout=1.5).data == 1.5
        assert system.ask("root/no_limit", "x", timeout=7.0).data == 7.0
        system.tell("root/no_limit", "x")  # a tell without a deadline: nothing bounds it
        assert system.ask("root/no_limit", "x", timeout=3.0).data == 3.0


# -- growing the tree from inside an agent ---------------------------------------------------


class Router(Agent):
    """One agent per conversation: starts `conversations/<id>` on first sight, asks it, and
    stops it when the conversation ends."""

    def handle(self, message: Any) -> Any:
        verb, conv = message
        path = f"root/conversations/{conv}"
        if verb == "say":
            if path not in self.known:
                made = self.context.start_child("root/conversations", ChildSpec(conv, Echo))
                assert made == path
                self.known.add(path)
            return self.context.ask(path, f"hello {conv}").data
        if verb == "end":
            self.context.stop_child(path)
            self.known.discard(path)
            return "ended"
        try:  # bad input: a typed error the agent can handle
            self.context.start_child("root/nowhere", ChildSpec(conv, Echo))
        except HivekeeperError as exc:
            return type(exc).__name__
        return "unexpected"

    def on_start(self) -> None:
        self.known: set[str] = set()


def test_an_agent_starts_and_stops_one_child_per_conversation():
    tree = Supervisor(
        "root",
        children=[ChildSpec("router", Router), Supervisor("conversations")],
    )
    with start(tree) as system:
        for conv in ("c1", "c2", "c1"):
            answer = system.ask("root/router", ("say", conv), timeout=10.0)
            assert answer.data == f"hello {conv}", answer.error
        assert {"root/conversations/c1", "root/conversations/c2"} <= set(system.paths())
        assert system.ask("root/router", ("end", "c1"), timeout=10.0).data == "ended"
        assert "root/conversations/c1" not in system.paths()
        assert system.ask("root/conversations/c2", "direct", timeout=10.0).data == "direct"
        bad = system.ask("root/router", ("bad", "c3"), timeout=10.0)
        assert bad.data == UnknownPathError.__name__
        assert system.health().actors["root/router"].restarts == 0


def test_an_agent_cannot_stop_itself_or_its_supervisor_through_stop_child():
    """It would wait for its own handler to finish: refused at once, with the way to do it."""

    class StopsItself(Agent):
        def handle(self, message: Any) -> Any:
            try:
                self.context.stop_child(message)
            except ValueError as exc:
                return str(exc)
            return "stopped"

    class Other(Agent):
        def handle(self, message: Any) -> Any:
            return message

    tree = Supervisor(
        "root",
        children=[
            Supervisor("team", children=[ChildSpec("s", StopsItself), ChildSpec("o", Other)])
        ],
    )
    with start(tree) as system:
        for target in ("root/team/s", "root/team"):
            answer = system.ask("root/team/s", target, timeout=10.0)
            assert "self.context.stop()" in answer.data
        assert system.ask("root/team/s", "root/team/o", timeout=10.0).data == "stopped"
        assert "root/team/o" not in system.paths()


def test_start_child_under_an_agent_says_it_is_an_agent():
    with start(Supervisor("root", children=[ChildSpec("a", Echo)])) as system:
        with pytest.raises(UnknownPathError, match="is an agent, not a supervisor"):
            system.start_child("root/a", ChildSpec("x", Echo))
