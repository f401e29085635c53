"""Agents asking agents through their context, deadlines propagating, cycles ending early."""

from __future__ import annotations

import pytest

from supervisor import ChildSpec, ExecutionStatus, Supervisor, start
from tests.agents import Asker, Echo


def tree() -> Supervisor:
    return Supervisor(
        "root",
        children=[
            ChildSpec("router", Asker),
            ChildSpec("specialist", Asker),
            ChildSpec("echo", Echo),
        ],
    )


def test_router_asks_a_specialist_and_the_trace_id_follows():
    with start(tree()) as system:
        result = system.ask(
            "root/router",
            {"ask": "root/specialist", "then": "help"},
            timeout=5.0,
            trace_id="trace-123",
        )
        assert result.status is ExecutionStatus.SUCCESS
        assert result.trace_id == "trace-123"
        assert result.data["status"] == "success"
        assert result.data["data"] == {"echo": "help", "trace": "trace-123"}
        assert result.data["trace"] == "trace-123"


def test_an_agent_asking_itself_ends_with_timeout_at_once_not_a_hang():
    with start(tree()) as system:
        result = system.ask(
            "root/router", {"ask": "root/router", "then": "me", "timeout": 30}, timeout=5.0
        )
        assert result.status is ExecutionStatus.SUCCESS  # the router itself answered
        inner = result.data
        assert inner["status"] == "timeout"
        assert "ask cycle root/router -> root/router" in inner["error"]


def test_a_two_agent_cycle_ends_with_timeout_and_names_the_cycle():
    with start(tree()) as system:
        message = {
            "ask": "root/specialist",
            "then": {"ask": "root/router", "then": "loop", "timeout": 30},
        }
        result = system.ask("root/router", message, timeout=5.0)
        inner = result.data["data"]
        assert inner["status"] == "timeout"
        assert "root/router -> root/specialist -> root/router" in inner["error"]


def test_a_cycle_through_a_spawned_thread_still_ends_at_its_deadline():
    import threading

    from actors import Agent

    class Sneaky(Agent):
        """Asks itself from another thread, so the chain is unknown: only the deadline helps."""

        def handle(self, message: object) -> object:
            if message == "go":
                box: list[object] = []
                t = threading.Thread(
                    target=lambda: box.append(
                        self.context.ask(self.context.path, "inner", timeout=0.2)
                    )
                )
                t.start()
                t.join()
                return box[0].status.value  # type: ignore[attr-defined]
            return "inner-answer"

    with start(Supervisor("root", children=[ChildSpec("s", Sneaky)])) as system:
        assert system.ask("root/s", "go", timeout=5.0).data == "timeout"


def test_inner_ask_defaults_to_what_is_left_of_the_outer_deadline():
    from tests.agents import Blocking, Gate

    gate = Gate()
    tree2 = Supervisor(
        "root", children=[ChildSpec("router", Asker), ChildSpec("slow", Blocking, args=(gate,))]
    )
    with start(tree2) as system:
        try:
            result = system.ask("root/router", {"ask": "root/slow", "then": "block"}, timeout=0.3)
            # the router's inner ask inherited the outer deadline (not the 30 s default): either
            # the router reports its inner TIMEOUT first, or the caller's own deadline ends it.
            if result.status is ExecutionStatus.SUCCESS:
                assert result.data["status"] == "timeout"
            else:
                assert result.status is ExecutionStatus.TIMEOUT
        finally:
            gate.release()


@pytest.mark.parametrize("n", [1, 8])
def test_many_callers_in_parallel(n):
    import concurrent.futures

    with start(tree()) as system, concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: system.ask("root/echo", i, timeout=5.0), range(200)))
    assert [r.data for r in results] == list(range(200))


def test_an_agent_can_start_a_new_trace_for_the_requests_it_generates():
    from actors import Agent

    class Source(Agent):
        def handle(self, message: object) -> object:
            inherited = self.context.ask("root/echo", "a").trace_id
            fresh = self.context.ask("root/echo", "b", trace_id="req-2").trace_id
            return inherited, fresh

    tree2 = Supervisor("root", children=[ChildSpec("src", Source), ChildSpec("echo", Echo)])
    with start(tree2) as system:
        inherited, fresh = system.ask("root/src", "go", timeout=5.0, trace_id="req-1").data
    assert inherited == "req-1"
    assert fresh == "req-2"
