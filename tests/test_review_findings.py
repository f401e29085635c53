"""Regression tests for bugs found in review of the core runtime (each fails before its fix).

Deterministic: threading.Event gates, FakeClock, capture_events / wait_until; no sleeps."""

from __future__ import annotations

import threading
from typing import Any

from actors import Agent, ExecutionStatus
from strategies import OneForAll
from supervisor import ChildSpec, Supervisor, start
from supervisor._events import add_sink, remove_sink
from supervisor.testing import FakeClock, capture_events, wait_until

_WAIT = 10.0


class _Gate:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


class CrashesWhenReleased(Agent):
    """'work': signals it runs, waits for the gate, then raises (a crash while being stopped)."""

    def __init__(self, gate: _Gate) -> None:
        self.gate = gate

    def handle(self, message: Any) -> Any:
        if message == "work":
            self.gate.entered.set()
            assert self.gate.release.wait(_WAIT)
            raise RuntimeError("crashed while its supervisor was stopping it")
        return f"ok:{message}"


class CrashesOnBoom(Agent):
    def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        return f"ok:{message}"


def test_a_host_abandoned_as_it_crashes_is_not_counted_as_running_forever():
    """A host that crashes while its supervisor stops it, and whose shutdown_timeout fires
    between the crash and the end of its thread, is abandoned (abandoned_running += 1); its
    thread then ends through _end_loop, which never takes the count back down (only on_stop
    does, and a crashed host's on_stop never runs). With max_abandoned=1 the agent is then
    held down for ever although no thread of it runs."""
    clock, gate = FakeClock(), _Gate()
    paused, resume = threading.Event(), threading.Event()

    def hold_the_crash(event: dict[str, Any]) -> None:
        # runs on the crashing host's thread, between _crash's locked section and _end_loop
        if event["event"] == "agent_crashed" and event.get("path") == "root/a":
            paused.set()
            resume.wait(_WAIT)

    tree = Supervisor(
        "root",
        strategy=OneForAll(max_restarts=100),
        children=[
            ChildSpec(
                "a",
                CrashesWhenReleased,
                args=(gate,),
                shutdown_timeout=1.0,
                message_timeout=None,
                max_abandoned=1,
            ),
            ChildSpec("b", CrashesOnBoom),
        ],
    )
    try:
        with capture_events() as events, start(tree, clock=clock) as system:
            slot = system._tree.slots["root/a"]
            system.tell("root/a", "work")
            assert gate.entered.wait(_WAIT)
            host = slot.host
            assert host is not None
            # b crashes: one_for_all stops a (which is busy with "work") before restarting both
            system.tell("root/b", "boom")
            events.wait_for("child_stopping", path="root/a")
            add_sink(hold_the_crash)
            try:
                gate.release.set()  # a's handler raises now: it crashes while stopping
                assert paused.wait(_WAIT)
                clock.advance(1.5)  # its shutdown_timeout fires: the supervisor abandons it
                events.wait_for("child_abandoned", path="root/a")
                assert slot.stats.abandoned_running == 1
            finally:
                resume.set()
                remove_sink(hold_the_crash)
            # the crashed host's thread ends (its _end_loop): nothing of a runs any more
            wait_until(lambda: host.finished)
            assert slot.stats.abandoned_running == 0
            # and so a is not held down: it is started again and answers
            events.wait_for("child_started", path="root/a", count=2)
            assert system.ask("root/a", "hi", timeout=100.0).data == "ok:hi"
    finally:
        gate.release.set()
        resume.set()


class _HostileResult:
    """Garbage an agent may return: asking it for its class raises (as some lazy proxies do)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("a proxy whose target is gone")


class ReturnsGarbage(Agent):
    def handle(self, message: Any) -> Any:
        return _HostileResult()


def test_a_garbage_return_value_does_not_lose_the_message():
    """_handle clears host.current, then classifies the outcome (isinstance) and answers
    outside its try: when that raises, on_receive's catch-all crashes the host with
    current=None, so the message is never answered (an ask waits out its whole deadline, a
    tell is dropped without a dead letter)."""
    clock = FakeClock()
    tree = Supervisor("root", children=[ChildSpec("g", ReturnsGarbage, retries=0)])
    with capture_events() as events, start(tree, clock=clock) as system:
        pending = system.ask_future("root/g", "x", timeout=100.0)
        system.tell("root/g", "y")
        # each message crashed the host, which was restarted; the supervisor answers what a
        # crashed host held before it handles the next host's Started
        events.wait_for("child_started", path="root/g", count=3)
        assert pending.done(), "the ask was never answered: it would wait its whole deadline"
        assert pending.result().status is not ExecutionStatus.SUCCESS
        assert system.dead_letters("root/g"), "the tell was dropped without a dead letter"


class Echoes(Agent):
    def handle(self, message: Any) -> Any:
        return message


class AsksWithAnIntTraceId(Agent):
    def handle(self, message: Any) -> Any:
        answer = self.context.ask("root/b", message, timeout=100.0, trace_id=42)  # type: ignore[arg-type]
        return answer.status.value


def test_a_bad_trace_id_from_one_agent_does_not_crash_the_agent_it_asks():
    """An agent passes a non-str trace_id: nothing checks it at the ask, so the *asked* agent's
    host fails to build ExecutionResult(trace_id=42) after its handler succeeded (the same
    unguarded answer path as above): b crashes and is restarted, and the ask is lost."""
    clock = FakeClock()
    tree = Supervisor(
        "root", children=[ChildSpec("a", AsksWithAnIntTraceId), ChildSpec("b", Echoes)]
    )
    with capture_events() as events, start(tree, clock=clock) as system:
        pending = system.ask_future("root/a", "x", timeout=100.0)
        try:
            wait_until(
                lambda: pending.done() or bool(events.matching("agent_crashed", path="root/b"))
            )
            crashed = events.matching("agent_crashed", path="root/b")
            assert not crashed, f"b crashed for a's mistake: {crashed[0]['reason']}"
            assert system.health().actors["root/b"].restarts == 0
        finally:
            clock.advance(200.0)  # let a's ask (lost under the bug) reach its deadline
