"""start_child / stop_child under races, children that fail to start (OTP's start_child
contract), and argument validation at start(). Each test failed before its fix."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from actors import Agent, FailureReason
from strategies import OneForOne
from supervisor import (
    ChildSpec,
    ChildStartError,
    DuplicateChildError,
    HivekeeperError,
    NotAChildError,
    Supervisor,
    SupervisorUnavailableError,
    UnknownPathError,
    start,
)
from supervisor.testing import capture_events
from tests.agents import AlwaysCrash, Blocking, Counter, Echo, Gate, Human, Lifecycle


def conversations_tree() -> Supervisor:
    return Supervisor(
        "root",
        children=[
            Supervisor("c", strategy=OneForOne(max_restarts=1, within_seconds=60.0)),
            ChildSpec("echo", Echo, fallback=Human),
        ],
    )


# -- item 10: concurrent start_child / stop_child raise only typed errors --------------------


def test_concurrent_start_and_stop_child_raise_only_typed_errors():
    untyped: list[BaseException] = []
    typed: dict[str, int] = {}
    lock = threading.Lock()
    go = threading.Barrier(4)

    with start(conversations_tree()) as system:

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            go.wait()
            for _ in range(300):
                i = rng.randrange(4)
                try:
                    if rng.random() < 0.5:
                        spec: ChildSpec | Supervisor = (
                            ChildSpec(f"k{i}", Echo)
                            if i < 3
                            else Supervisor(f"k{i}", children=[ChildSpec("inner", Echo)])
                        )
                        system.start_child("root/c", spec, timeout=30.0)
                    else:
                        path = f"root/c/k{i}" if rng.random() < 0.8 else "root/c/k3/inner"
                        system.stop_child(path, timeout=30.0)
                except HivekeeperError as exc:
                    with lock:
                        typed[type(exc).__name__] = typed.get(type(exc).__name__, 0) + 1
                except Exception as exc:  # noqa: BLE001 - what this test looks for
                    with lock:
                        untyped.append(exc)

        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(50.0)
        assert not [t for t in threads if t.is_alive()]
        assert untyped == [], [f"{type(e).__name__}: {e}" for e in untyped[:5]]
        # a duplicate id, a path removed meanwhile, a child removed before it started, a
        # subtree that is being stopped
        assert set(typed) <= {
            "DuplicateChildError",
            "UnknownPathError",
            "ChildStartError",
            "SupervisorUnavailableError",
        }
        # the tree is still consistent and serving
        health = system.health()
        assert health.actors["root/c"].state == "running"
        for path in health.actors["root/c"].children:
            if path.endswith(("k0", "k1", "k2")):
                assert system.ask(path, "hi", timeout=10.0).data == "hi"
        assert system.ask("root/echo", "still here", timeout=10.0).data == "still here"


def test_stop_child_of_a_child_removed_meanwhile_is_an_unknown_path():
    gate = Gate()
    with start(conversations_tree()) as system:
        path = system.start_child("root/c", ChildSpec("slow", Blocking, args=(gate,)))
        system.ask_future(path, "block", timeout=10.0)
        gate.wait_entered()
        with capture_events() as events:
            first = threading.Thread(target=system.stop_child, args=(path,))
            first.start()
            events.wait_for("child_stopping", path=path)
            node = system._tree.node(path)
            gate.release()
            first.join(10.0)
        # a stop_child that looked the path up before the removal and arrives after it
        from concurrent.futures import Future

        from supervisor.delivery._messages import StopChild

        late: Future[None] = Future()
        system._tree.supervisor("root/c").post(StopChild(node, late))
        with pytest.raises(UnknownPathError):
            late.result(10.0)


def test_dynamic_child_errors_are_typed():
    with start(conversations_tree()) as system:
        system.start_child("root/c", ChildSpec("dup", Echo))
        with pytest.raises(DuplicateChildError) as dup:
            system.start_child("root/c", ChildSpec("dup", Echo))
        assert isinstance(dup.value, ValueError)
        assert (dup.value.supervisor, dup.value.child) == ("root/c", "dup")
        with pytest.raises(NotAChildError):
            system.stop_child("root")
        with pytest.raises(NotAChildError):
            system.stop_child("root/echo#Human")  # a fallback: its primary's, not a child


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, -1, 1e12])
def test_start_refuses_bad_timeouts_before_starting_anything(bad: float):
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="default_timeout"):
        start(conversations_tree(), default_timeout=bad)
    with pytest.raises(ValueError, match="start_timeout"):
        start(conversations_tree(), start_timeout=bad)
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize("bad", ["5", None, True, [1]])
def test_start_refuses_timeouts_that_are_not_numbers(bad: Any):
    with pytest.raises(TypeError, match="default_timeout"):
        start(conversations_tree(), default_timeout=bad)
    with pytest.raises(TypeError, match="start_timeout"):
        start(conversations_tree(), start_timeout=bad)


def test_start_child_and_stop_child_refuse_bad_timeouts():
    with start(conversations_tree()) as system:
        with pytest.raises(ValueError, match="timeout"):
            system.start_child("root/c", ChildSpec("x", Echo), timeout=float("nan"))
        with pytest.raises(ValueError, match="timeout"):
            system.stop_child("root/echo", timeout=0)
        assert "root/c/x" not in system.paths()
        assert system.ask("root/echo", "ok", timeout=5.0).data == "ok"


# -- item 12: a child that fails to start is discarded, its supervisor untouched --------------


class FailsInInit(Agent):
    def __init__(self) -> None:
        raise RuntimeError("no model configured")

    def handle(self, message: Any) -> Any:  # pragma: no cover - never started
        return message


def test_a_child_that_fails_in_on_start_is_discarded_and_nothing_else_changes():
    journal: list[str] = []
    with capture_events() as events, start(conversations_tree()) as system:
        sibling = system.start_child("root/c", ChildSpec("healthy", Counter))
        assert system.ask(sibling, "x", timeout=5.0).data == 1
        with pytest.raises(ChildStartError, match="bad cannot start") as err:
            system.start_child(
                "root/c",
                ChildSpec("bad", Lifecycle, args=(journal, "bad"), kwargs={"fail_start": True}),
            )
        assert err.value.path == "root/c/bad"
        assert err.value.child == "bad"
        assert "RuntimeError: bad cannot start" in err.value.cause
        assert "root/c/bad" not in system.paths()
        with pytest.raises(UnknownPathError):
            system.ask("root/c/bad", "x", timeout=5.0)
        health = system.health()
        c = health.actors["root/c"]
        assert c.state == "running"
        assert c.children == [sibling]
        assert c.restarts == 0
        assert health.state == "running"
        assert events.matching("supervisor_escalated") == []
        assert events.matching("child_restarting") == []
        assert len(events.matching("child_start_failed", path="root/c/bad")) == 1
        # the sibling kept its state: it was never restarted
        assert system.ask(sibling, "x", timeout=5.0).data == 2
        assert system.ask("root/echo", "fine", timeout=5.0).data == "fine"
        # the id is free again
        assert system.start_child("root/c", ChildSpec("bad", Echo)) == "root/c/bad"


def test_a_child_that_fails_in_init_is_discarded_every_time_without_using_the_budget():
    with capture_events() as events, start(conversations_tree()) as system:
        for _ in range(5):  # more than the supervisor's budget of 1 restart
            with pytest.raises(ChildStartError, match="no model configured"):
                system.start_child("root/c", ChildSpec("bad", FailsInInit))
        assert system.health().actors["root/c"].state == "running"
        assert system.health().actors["root/c"].children == []
        assert events.matching("supervisor_escalated") == []
        assert system.ask("root/echo", "fine", timeout=5.0).data == "fine"


class SlowStart(Agent):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def on_start(self) -> None:
        self.gate.entered.set()
        self.gate.opened.wait(30)

    def handle(self, message: Any) -> Any:
        return message


def test_a_child_that_overruns_its_start_timeout_is_discarded():
    gate = Gate()
    with start(conversations_tree()) as system:
        spec = ChildSpec("slow", SlowStart, args=(gate,), start_timeout=0.2)
        try:
            with pytest.raises(ChildStartError, match="start_timeout"):
                system.start_child("root/c", spec, timeout=20.0)
        finally:
            gate.release()
        assert "root/c/slow" not in system.paths()
        assert system.health().actors["root/c"].state == "running"
        assert system.ask("root/echo", "fine", timeout=5.0).data == "fine"


def test_a_subtree_whose_children_cannot_start_is_discarded():
    team = Supervisor(
        "team",
        strategy=OneForOne(max_restarts=1),
        children=[ChildSpec("ok", Echo), ChildSpec("bad", FailsInInit)],
    )
    with capture_events() as events, start(conversations_tree()) as system:
        with pytest.raises(ChildStartError, match="root/c/team"):
            system.start_child("root/c", team)
        assert not [p for p in system.paths() if p.startswith("root/c/team")]
        assert "root/c/team" not in system.health().actors
        assert system.health().actors["root/c"].state == "running"
        assert system.health().actors["root/c"].restarts == 0
        assert not events.matching("supervisor_escalated", path="root/c")
        assert system.ask("root/echo", "fine", timeout=5.0).data == "fine"


def test_a_child_still_starting_when_its_supervisor_gives_up_is_not_kept():
    gate = Gate()
    tree = Supervisor(
        "root",
        children=[
            Supervisor(
                "c",
                strategy=OneForOne(max_restarts=0),
                children=[ChildSpec("w", AlwaysCrash)],
            ),
            ChildSpec("echo", Echo),
        ],
    )
    outcome: list[BaseException] = []

    def start_slow() -> None:
        try:
            system.start_child("root/c", ChildSpec("slow", SlowStart, args=(gate,)), timeout=20.0)
        except Exception as exc:  # noqa: BLE001 - what this test looks for
            outcome.append(exc)

    with capture_events() as events, start(tree) as system:
        starter = threading.Thread(target=start_slow)
        starter.start()
        gate.wait_entered()
        system.tell("root/c/w", "x")  # c has no restart budget: it gives up
        events.wait_for("child_stopping", path="root/c/slow")
        gate.release()
        starter.join(20.0)
        events.wait_for("child_started", path="root/c", count=2)  # root restarted c
        assert len(outcome) == 1
        assert isinstance(outcome[0], SupervisorUnavailableError), outcome[0]
        assert "root/c/slow" not in system.paths()
        assert system.health().actors["root/c"].children == ["root/c/w"]
        assert system.ask("root/echo", "fine", timeout=5.0).data == "fine"


def test_a_dynamic_child_that_crash_loops_is_dropped_when_its_supervisor_restarts():
    """OTP: a restarted supervisor starts from its declaration. A child added by start_child
    that started fine and then crash-loops makes its supervisor give up once; it is not
    re-created in the next incarnation, so it cannot fail the whole tree."""
    from supervisor.testing import wait_until

    inits: list[int] = []

    class Flaky(Echo):
        def __init__(self) -> None:
            inits.append(1)
            if len(inits) > 1:  # the first start works, every restart fails
                raise RuntimeError("cannot come back")

        def handle(self, message: Any) -> Any:
            raise RuntimeError("crash")

    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=2, within_seconds=60.0),
        children=[
            Supervisor("convs", strategy=OneForOne(max_restarts=1, within_seconds=60.0)),
            ChildSpec("other", Echo),
        ],
    )
    with capture_events() as events, start(tree) as system:
        path = system.start_child("root/convs", ChildSpec("c1", Flaky))
        assert system.ask(path, "crash me", timeout=5.0).reason is FailureReason.CRASH
        events.wait_for("supervisor_escalated", path="root/convs")
        events.wait_for("child_started", path="root/convs", count=2)  # restarted by root
        wait_until(lambda: path not in system.paths())
        assert system.health().state in ("running", "degraded")
        assert system.ask("root/other", "hi", timeout=5.0).data == "hi"
        assert len(events.matching("supervisor_escalated")) == 1
        assert system.health().actors["root/convs"].state == "running"
