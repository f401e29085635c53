"""health() never shows or trips on what an agent holds: only an LLM agent's AgentState is
reported, agent-provided text always serialises, and a failing read never raises."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

import supervisor.inspect._health as health_module
from actors import LLMAgent
from supervisor import ChildSpec, Supervisor, start
from supervisor.cli import main
from supervisor.inspect._http import serve_http
from supervisor.testing import wait_until
from tests.cli_trees import SECRET, odd_states


class NeverCalledLLM:
    def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not called")


class Desk(LLMAgent):
    pass


def crashed_once(system: Any, path: str) -> None:
    wait_until(lambda: (a := system.health().actors[path]).restarts == 1 and a.state == "running")


def test_agent_state_is_only_an_llm_agents_agent_state() -> None:
    tree = Supervisor(
        "root",
        children=[
            *odd_states.children,
            ChildSpec("desk", Desk, kwargs={"llm": NeverCalledLLM()}),
        ],
    )
    with start(tree) as system, serve_http(system) as server:
        actors = system.health().actors
        assert actors["root/secret"].agent_state is None
        assert actors["root/raising"].agent_state is None
        assert actors["root/desk"].agent_state == "initializing"
        for route in ("health", "tree"):
            text = httpx.get(server.url + route, timeout=10.0).text
            assert SECRET not in text
            assert "api_key" not in text
            assert "user data" not in text


def test_a_lone_surrogate_in_an_error_keeps_health_serialisable() -> None:
    with start(odd_states) as system, serve_http(system) as server:
        message = json.loads('"\\ud800"')  # what a JSON request body can carry
        system.ask("odd/surrogate", message, timeout=5.0)
        crashed_once(system, "odd/surrogate")
        health = system.health()
        error = health.actors["odd/surrogate"].last_error
        assert error is not None
        assert error.startswith("RuntimeError: bad input ")
        error.encode("utf-8")  # no lone surrogate left
        json.loads(health.model_dump_json())
        for route in ("health", "tree"):
            resp = httpx.get(server.url + route, timeout=10.0)
            assert resp.status_code == 200, route
            assert "bad input" in resp.text
        assert httpx.get(server.url + "metrics", timeout=10.0).status_code == 200


def test_an_agent_whose_state_property_raises_breaks_nothing() -> None:
    with start(odd_states) as system, serve_http(system) as server:
        assert system.health().actors["odd/raising"].state == "running"
        assert system.health().tree()["tree"]["children"]
        for route in ("health", "tree", "metrics"):
            assert httpx.get(server.url + route, timeout=10.0).status_code == 200, route


def test_hivekeeper_run_survives_an_agent_whose_state_raises(capsys: Any) -> None:
    assert main(["run", "tests.cli_trees:odd_states", "--for", "0.2", "--refresh", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "stopped odd" in out
    assert SECRET not in out


def test_a_snapshot_that_fails_for_one_agent_still_reports_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = health_module._agent

    def flaky(slot: Any, *args: Any) -> Any:
        if slot.path == "odd/raising":
            raise RuntimeError("cannot read this one")
        return real(slot, *args)

    with start(odd_states) as system:
        monkeypatch.setattr(health_module, "_agent", flaky)
        health = system.health()
        broken = health.actors["odd/raising"]
        assert broken.state == "running"
        assert broken.last_error == "health snapshot failed: RuntimeError"
        assert health.actors["odd/secret"].processed == 0
        json.loads(health.model_dump_json())


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt, RuntimeError])
def test_health_never_runs_an_agents_state_property(exc: type[BaseException]) -> None:
    """A `state` property is user code: health must not call it on the caller's thread (it
    could block, end the process or return a secret)."""
    import threading

    calls: list[str] = []
    blocked = threading.Event()

    from actors import Agent

    class Hostile(Agent):
        @property
        def state(self) -> Any:
            calls.append("state")
            blocked.wait(5.0)  # a slow property would stall every health reader
            raise exc

        def handle(self, message: Any) -> Any:
            return message

    with start(Supervisor("root", children=[ChildSpec("h", Hostile)])) as system:
        snapshot = system.health()
        assert snapshot.actors["root/h"].agent_state is None
        assert snapshot.model_dump_json()
        with serve_http(system) as server:
            assert httpx.get(server.url + "health", timeout=10.0).status_code == 200
    assert calls == []
