"""isolation="ray": agents as Ray actors on the session's local Ray (tests marked `ray`; the
behaviour suite runs over the Ray host too, in test_behaviour_by_host.py). The supervisor
keeps every decision; Ray only places, calls and kills."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from pydantic import ValidationError

from actors import Agent, ExecutionStatus, FailureReason, Rule, RuleBasedAgent
from strategies import Backoff, OneForOne
from supervisor import ChildSpec, FakeClock, Supervisor, render_metrics, start, warm_ray_actors
from supervisor.hosts._ray_session import SPARES, SpareActors
from supervisor.testing import wait_until

pytestmark = pytest.mark.timeout(180)  # Ray actors start slowly on a loaded machine


class RayAgent(Agent):
    def handle(self, message: Any) -> Any:
        import ray

        context = ray.get_runtime_context()
        if message == "handle":
            return context.current_actor  # so the test can ray.kill it from outside
        if message == "sleep":
            time.sleep(60)  # sleep-ok: the hang under test (its actor is killed)
        if message == "lock":
            return threading.Lock()
        if message == "ask":
            return self.context.ask("root/echo", "from a Ray actor", timeout=10.0).data
        return {"actor": context.get_actor_id(), "pid": os.getpid(), "echo": message}


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class Stand(RuleBasedAgent):
    rules = (Rule(when=lambda m: True, reply=lambda m: "fallback"),)


def _tree(fallback: Any = Stand, **kw: Any) -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=20, **kw.pop("strategy", {})),
        children=[
            ChildSpec("w", RayAgent, isolation="ray", fallback=fallback, **kw),
            ChildSpec("other", RayAgent, isolation="ray"),
            ChildSpec("echo", Echo),
        ],
    )


def _actor_dead(ray: Any, handle: Any) -> bool:
    try:
        ray.get(handle.info.remote(), timeout=5.0)
    except ray.exceptions.RayActorError:
        return True
    return False


@pytest.mark.ray
def test_a_ray_actor_killed_from_outside_is_restarted_and_its_fallback_answers_meanwhile(
    ray_cluster: Any,
) -> None:
    ray = ray_cluster
    clock = FakeClock()
    # a restart backoff held by the fake clock: the agent stays down until the test moves it
    backoff = {"backoff": Backoff(min_backoff=30.0, max_backoff=30.0, random_factor=0.0)}
    with start(_tree(strategy=backoff), clock=clock) as system:
        first = system.ask("root/w", "who", timeout=30.0).data
        other = system.ask("root/other", "who", timeout=30.0).data
        handle = system.ask("root/w", "handle", timeout=30.0).data
        ray.kill(handle, no_restart=True)  # from outside the supervisor
        wait_until(lambda: system.health().actors["root/w"].restarts == 1, timeout=20.0)
        health = system.health().actors["root/w"]
        assert health.kills == {"died": 1}
        assert health.state == "backoff"
        down = system.ask("root/w", "who", timeout=10.0)
        assert down.fallback_used
        assert down.data == "fallback"
        assert system.ask("root/other", "who", timeout=10.0).data == other  # untouched
        clock.advance(30.0)
        wait_until(lambda: system.health().actors["root/w"].state == "running", timeout=20.0)
        back = system.ask("root/w", "who", timeout=30.0)
        assert not back.fallback_used
        assert back.data["actor"] != first["actor"]  # a new actor
        assert system.health().actors["root/w"].actor_id == back.data["actor"]


@pytest.mark.ray
def test_a_handler_asleep_for_60_s_is_answered_timeout_and_its_actor_killed(
    ray_cluster: Any,
) -> None:
    ray = ray_cluster
    with start(_tree(fallback=None, message_timeout=1.0)) as system:
        handle = system.ask("root/w", "handle", timeout=30.0).data
        before = system.ask("root/w", "who", timeout=30.0).data
        sent = time.monotonic()
        answer = system.ask("root/w", "sleep", timeout=30.0)
        assert answer.status is ExecutionStatus.TIMEOUT
        assert answer.reason is FailureReason.DEADLINE
        assert time.monotonic() - sent < 30.0  # answered at its deadline, not after 60 s
        wait_until(lambda: _actor_dead(ray, handle), timeout=60.0)  # killed, not left asleep
        after = system.ask("root/w", "who", timeout=30.0).data
        assert after["actor"] != before["actor"]
        health = system.health().actors["root/w"]
        assert health.kills == {"deadline": 1}
        assert health.abandoned == 0


@pytest.mark.ray
def test_health_and_metrics_show_where_each_ray_agent_runs(ray_cluster: Any) -> None:
    ray = ray_cluster
    with start(_tree()) as system:
        answer = system.ask("root/w", "who", timeout=30.0).data
        health = system.health().actors["root/w"]
        assert health.isolation == "ray"
        assert health.actor_id == answer["actor"]
        assert health.node_id == ray.get_runtime_context().get_node_id()
        assert health.pid == answer["pid"]
        assert health.pid != os.getpid()
        assert health.rss_mb is not None  # a local node: its /proc is readable here
        assert system.health().actors["root/echo"].actor_id is None
        body = render_metrics(system).decode()
    assert f'actor_id="{answer["actor"]}"' in body
    assert 'hivekeeper_isolation{isolation="ray",path="root/w"} 1.0' in body


@pytest.mark.ray
def test_what_cannot_cross_to_a_ray_actor_is_a_typed_error(ray_cluster: Any) -> None:
    with start(_tree(fallback=None)) as system:
        before = system.ask("root/w", "who", timeout=30.0).data
        sent = system.ask("root/w", threading.Lock(), timeout=30.0)
        assert sent.status is ExecutionStatus.INVALID_INPUT
        assert "cannot pickle" in (sent.error or "")
        returned = system.ask("root/w", "lock", timeout=30.0)
        assert returned.status is ExecutionStatus.INVALID_OUTPUT
        assert system.ask("root/w", "who", timeout=30.0).data["actor"] == before["actor"]


@pytest.mark.ray
def test_a_ray_agent_reaches_the_rest_of_the_tree(ray_cluster: Any) -> None:
    with start(_tree()) as system:
        assert system.ask("root/w", "ask", timeout=30.0).data == "from a Ray actor"


@pytest.mark.ray
def test_a_local_ray_is_started_with_the_first_ray_agent_and_shut_down_with_its_system() -> None:
    """Without a Ray of the application's, the first Ray agent starts one (in a fresh
    interpreter here: the session's Ray is the application's own in this process)."""
    script = textwrap.dedent(
        """
        import ray
        from actors import Agent
        from supervisor import ChildSpec, Supervisor, start

        class A(Agent):
            def handle(self, message):
                return "ok"

        tree = Supervisor("root", children=[ChildSpec("a", A, isolation="ray")])
        assert not ray.is_initialized()
        with start(tree) as system:
            assert ray.is_initialized()
            assert system.ask("root/a", "ip", timeout=60.0).data == "ok"
            print("cpus", int(ray.cluster_resources()["CPU"]))
        print("after", ray.is_initialized())
        """
    )
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert f"cpus {os.cpu_count()}" in done.stdout
    assert "after False" in done.stdout


@pytest.mark.ray
def test_warm_actors_held_for_the_process_outlive_its_systems(ray_cluster: Any) -> None:
    """The session holds warm actors (conftest: warm_ray_actors): a new system's agent starts
    in one that was placed before that system existed."""
    wait_until(lambda: bool(SPARES.ready({})), timeout=120.0)
    warm = {worker.actor_id for worker in SPARES.ready({})}
    tree = Supervisor("root", children=[ChildSpec("w", RayAgent, isolation="ray")])
    with start(tree) as system:
        actor = system.ask("root/w", "who", timeout=30.0).data["actor"]
    assert actor in warm
    assert actor not in {worker.actor_id for worker in SPARES.ready({})}  # used: never again


@pytest.mark.ray
def test_warm_actors_are_killed_when_their_last_user_closes(ray_cluster: Any) -> None:
    spares = SpareActors()  # a reserve of its own, not the session's
    options = {"num_cpus": 0}
    spares.open()
    try:
        spares.hold(2, options, 120.0)
        wait_until(lambda: len(spares.ready(options)) == 2, timeout=120.0)
        workers = spares.ready(options)
        spares.unhold(options)
    finally:
        spares.close()
    assert spares.ready(options) == []
    wait_until(lambda: not any(worker.alive() for worker in workers), timeout=30.0)


def test_warm_ray_actors_wants_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"), warm_ray_actors(0):
        pass


def test_ray_options_are_checked_where_the_tree_is_declared() -> None:
    with pytest.raises(ValidationError, match="ray_options needs isolation='ray'"):
        ChildSpec("w", Echo, ray_options={"num_cpus": 1})
    with pytest.raises(ValidationError, match="may not set max_restarts"):
        ChildSpec("w", Echo, isolation="ray", ray_options={"max_restarts": 3})
    with pytest.raises(ValidationError, match="may not set max_concurrency"):
        ChildSpec("w", Echo, isolation="ray", ray_options={"max_concurrency": 1})
    with pytest.raises(ValidationError, match="ray_options=\\{'memory'"):
        ChildSpec("w", Echo, isolation="ray", memory_limit_mb=512)
    with pytest.raises(ValidationError):
        ChildSpec("w", Echo, isolation="ray", ray_options=["num_cpus"])  # type: ignore[arg-type]
    ChildSpec("w", Echo, isolation="ray", ray_options={"num_cpus": 0.5})


def test_a_ray_address_must_be_a_string() -> None:
    tree = Supervisor("root", children=[ChildSpec("e", Echo)])
    with pytest.raises(TypeError, match="ray_address"):
        start(tree, ray_address=6379)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ray_address"):
        start(tree, ray_address="  ")
