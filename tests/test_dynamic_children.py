"""start_child / stop_child: one agent per conversation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from actors import Agent
from strategies import OneForOne
from supervisor import ChildSpec, ExecutionStatus, Supervisor, UnknownPathError, start
from supervisor.testing import capture_events
from tests.agents import Blocking, Counter, Echo, Gate, Human


def tree() -> Supervisor:
    return Supervisor(
        "root",
        children=[
            Supervisor("conversations", strategy=OneForOne(max_restarts=10)),
            ChildSpec("echo", Echo),
        ],
    )


def test_start_and_stop_children_at_runtime():
    with start(tree()) as system:
        paths = [
            system.start_child("root/conversations", ChildSpec(f"conv-{i}", Counter))
            for i in range(5)
        ]
        assert paths == [f"root/conversations/conv-{i}" for i in range(5)]
        assert system.ask("root/conversations/conv-3", "x", timeout=5.0).data == 1
        assert system.health().actors["root/conversations"].children == paths
        system.stop_child("root/conversations/conv-3")
        with pytest.raises(UnknownPathError):
            system.ask("root/conversations/conv-3", "x", timeout=5.0)
        assert "root/conversations/conv-3" not in system.health().actors
        assert system.ask("root/conversations/conv-4", "x", timeout=5.0).data == 1


def test_dynamic_children_are_supervised_like_static_ones():
    with capture_events() as events, start(tree()) as system:
        path = system.start_child("root/conversations", ChildSpec("user:42", Counter))
        system.ask(path, "boom", timeout=5.0)
        events.wait_for("child_started", path=path, count=2)
        assert system.ask(path, "x", timeout=5.0).data == 1


def test_dynamic_subtree_and_fallbacks():
    with start(tree()) as system:
        sub = Supervisor("team", children=[ChildSpec("a", Echo, fallback=Human)])
        assert system.start_child("root/conversations", sub) == "root/conversations/team"
        assert system.ask("root/conversations/team/a", "hi", timeout=5.0).data == "hi"
        assert "root/conversations/team/a#Human" in system.health().actors
        system.stop_child("root/conversations/team")
        assert "root/conversations/team/a#Human" not in system.health().actors
        with pytest.raises(UnknownPathError):
            system.ask("root/conversations/team/a", "hi", timeout=5.0)


def test_stop_child_answers_its_queue():
    gate = Gate()
    with start(tree()) as system:
        path = system.start_child("root/conversations", ChildSpec("slow", Blocking, args=(gate,)))
        busy = system.ask_future(path, "block", timeout=10.0)
        gate.wait_entered()
        queued = system.ask_future(path, "later", timeout=10.0)
        import threading

        with capture_events() as events:
            stopper = threading.Thread(target=system.stop_child, args=(path,))
            stopper.start()
            events.wait_for("child_stopping", path=path)
        gate.release()
        stopper.join(10)
        assert busy.result().status is ExecutionStatus.SUCCESS
        left = queued.result()
        assert left.status is ExecutionStatus.FAILURE
        assert "removed" in (left.error or "")


def test_bad_dynamic_children_get_clear_errors():
    with start(tree()) as system:
        system.start_child("root/conversations", ChildSpec("dup", Echo))
        with pytest.raises(ValueError, match="already has a child 'dup'"):
            system.start_child("root/conversations", ChildSpec("dup", Echo))
        with pytest.raises(UnknownPathError):
            system.start_child("root/nowhere", ChildSpec("x", Echo))
        with pytest.raises(UnknownPathError):
            system.stop_child("root/conversations/missing")
        with pytest.raises(TypeError):
            system.start_child("root/conversations", Echo)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            system.start_child("root/conversations", ChildSpec("bad id!", Echo))
        assert system.ask("root/echo", "still fine", timeout=5.0).data == "still fine"


class Spawner(Agent):
    """Grows the tree from inside: {"start": id} starts an Echo under its supervisor,
    {"stop": path} stops one; with spawn_on_start, on_start starts a helper (once the test
    has handed it the system)."""

    def __init__(self, holder: dict[str, Any], spawn_on_start: bool = False) -> None:
        self.holder = holder
        self.spawn_on_start = spawn_on_start

    def on_start(self) -> None:
        system = self.holder.get("system")
        if self.spawn_on_start and system is not None:
            n = self.holder["spawned"] = self.holder.get("spawned", 0) + 1
            system.start_child("root/conversations", ChildSpec(f"helper-{n}", Echo), timeout=20)

    def handle(self, message: Any) -> Any:
        system = self.holder["system"]
        if message == "boom":
            raise RuntimeError("boom!")
        if "start" in message:
            path = system.start_child("root/conversations", ChildSpec(message["start"], Echo))
            return system.ask(path, "from a handler", timeout=5.0).data
        system.stop_child(message["stop"])
        return "stopped"


def test_an_agent_can_start_and_stop_children_from_its_handler():
    holder: dict[str, Any] = {}
    spec = Supervisor(
        "root",
        children=[
            Supervisor(
                "conversations",
                strategy=OneForOne(max_restarts=10),
                children=[ChildSpec("spawner", Spawner, args=(holder,))],
            )
        ],
    )
    with start(spec) as system:
        holder["system"] = system
        spawner = "root/conversations/spawner"
        for i in range(3):
            answer = system.ask(spawner, {"start": f"c{i}"}, timeout=10.0)
            assert answer.data == "from a handler", answer.error
        assert system.ask(spawner, {"stop": "root/conversations/c1"}, timeout=10.0).data == (
            "stopped"
        )
        children = system.health().actors["root/conversations"].children
        assert children == [spawner, "root/conversations/c0", "root/conversations/c2"]


def test_an_agent_restarting_can_start_a_child_from_on_start_without_waiting_on_itself():
    holder: dict[str, Any] = {}
    spec = Supervisor(
        "root",
        children=[
            Supervisor(
                "conversations",
                strategy=OneForOne(max_restarts=10),
                children=[
                    ChildSpec("spawner", Spawner, args=(holder,), kwargs={"spawn_on_start": True})
                ],
            )
        ],
    )
    with capture_events() as events, start(spec) as system:
        holder["system"] = system
        spawner = "root/conversations/spawner"
        system.ask(spawner, "boom", timeout=5.0)
        # its restart's on_start starts helper-1 under its own supervisor, which is waiting
        # for that very on_start to finish before it (re)starts anything else
        events.wait_for("child_started", path=spawner, count=2, timeout=30.0)
        assert system.ask("root/conversations/helper-1", "hi", timeout=5.0).data == "hi"
        assert system.health().actors[spawner].restarts == 1
