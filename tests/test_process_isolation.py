"""isolation="process": the agent lives in a worker process that the operating system can kill.

The acceptance cases: a handler blocked in time.sleep(60) is answered TIMEOUT at its deadline
and its worker killed; a worker that calls os._exit(1) is restarted; an allocation past
memory_limit_mb fails that message only; what cannot be pickled is a typed error. Agents here
are module-level classes (the worker imports them) and share nothing with the test but
messages and answers.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from pydantic import ValidationError

from actors import Agent, ExecutionStatus, FailureReason, Rule, RuleBasedAgent
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, render_metrics, start
from supervisor.testing import wait_until


class Worker(Agent):
    def handle(self, message: Any) -> Any:
        if message == "pid":
            return os.getpid()
        if message == "sleep":
            time.sleep(60)  # sleep-ok: the hang under test (its worker is killed)
        if message == "exit":
            os._exit(1)
        if message == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if message == "big":
            return len(bytearray(2 * 1024**3))
        if message == "lock":
            return threading.Lock()
        if message == "frozen":
            return gc.get_freeze_count()
        if message == "ask":
            return self.context.ask("root/echo", "through the parent", timeout=10.0).data
        if message == "tell":
            self.context.tell("root/echo", "told")
            return "sent"
        return ("worker", message)


class Later(Agent):
    """Leaves a thread behind that uses self.context after the message has been answered."""

    def handle(self, message: Any) -> Any:
        trigger, out = message

        def later() -> None:
            while not os.path.exists(trigger):
                time.sleep(0.01)  # sleep-ok: polls a file the test writes, from a worker
            try:
                self.context.tell("root/echo", "between messages")
                outcome = "sent"
            except RuntimeError as exc:
                outcome = f"refused: {exc}"
            with open(out + ".tmp", "w", encoding="utf-8") as fh:
                fh.write(outcome)
            os.replace(out + ".tmp", out)

        threading.Thread(target=later, daemon=True).start()
        return "answered"


class AsyncWorker(Agent):
    async def handle(self, message: Any) -> Any:
        await asyncio.sleep(0)
        answer = await self.context.ask_async("root/echo", message, timeout=10.0)
        return ("async", answer.data, os.getpid())


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class Stand(RuleBasedAgent):
    rules = (Rule(when=lambda m: True, reply=lambda m: "fallback"),)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone for our purposes only once reaped: ask the kernel for its state
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def _tree(**kw: Any) -> Supervisor:
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=20),
        children=[ChildSpec("w", Worker, isolation="process", **kw), ChildSpec("echo", Echo)],
    )


def test_the_agent_runs_in_a_worker_process_and_health_shows_it() -> None:
    with start(_tree()) as system:
        pid = system.ask("root/w", "pid", timeout=30.0).data
        assert isinstance(pid, int)
        assert pid != os.getpid()
        health = system.health().actors["root/w"]
        assert health.isolation == "process"
        assert health.pid == pid
        assert health.rss_mb is not None
        assert health.rss_mb > 0
        assert system.health().actors["root/echo"].isolation == "thread"
        assert system.health().actors["root/echo"].pid is None
    wait_until(lambda: _gone(pid))


def test_what_a_worker_inherits_is_frozen_so_its_collector_never_copies_it() -> None:
    """A full collection in a worker would scan (and so copy) every object the fork server
    imported: tens of ms per worker start and ~15 MiB of private memory each."""
    with start(_tree()) as system:
        frozen = system.ask("root/w", "frozen", timeout=30.0).data
        assert isinstance(frozen, int)
        assert frozen > 10_000  # the runtime, pydantic, structlog ... as imported
        pid = system.ask("root/w", "pid", timeout=30.0).data
    wait_until(lambda: _gone(pid))


def test_a_handler_blocked_in_sleep_is_answered_timeout_and_its_worker_killed() -> None:
    with start(_tree(message_timeout=0.5)) as system:
        pid = system.ask("root/w", "pid", timeout=30.0).data
        answer = system.ask("root/w", "sleep", timeout=30.0)
        assert answer.status is ExecutionStatus.TIMEOUT
        assert answer.reason is FailureReason.DEADLINE
        wait_until(lambda: _gone(pid), timeout=1.0)  # the pid is gone within 1 s
        new_pid = system.ask("root/w", "pid", timeout=30.0).data
        assert new_pid != pid
        health = system.health().actors["root/w"]
        assert health.kills == {"deadline": 1}
        assert health.abandoned == 0  # nothing is left running
    wait_until(lambda: _gone(new_pid))


def test_a_worker_that_exits_is_restarted_and_its_caller_gets_failure() -> None:
    with start(_tree()) as system:
        pid = system.ask("root/w", "pid", timeout=30.0).data
        answer = system.ask("root/w", "exit", timeout=30.0)
        assert answer.status is ExecutionStatus.FAILURE
        assert answer.reason is FailureReason.CRASH
        assert "exit code 1" in (answer.error or "")
        assert system.ask("root/w", "again", timeout=30.0).data == ("worker", "again")
        assert system.ask("root/w", "pid", timeout=30.0).data != pid
        assert system.health().actors["root/w"].restarts == 1


def test_a_segfault_is_a_crash_of_that_agent_only() -> None:
    with start(_tree()) as system:
        answer = system.ask("root/w", "segfault", timeout=30.0)
        assert answer.status is ExecutionStatus.FAILURE
        assert "SIGSEGV" in (answer.error or "")
        assert system.ask("root/echo", "fine", timeout=30.0).data == "fine"
        assert system.ask("root/w", "x", timeout=30.0).data == ("worker", "x")


def test_a_worker_killed_while_idle_is_seen_at_once_and_replaced() -> None:
    with start(_tree()) as system:
        pid = system.ask("root/w", "pid", timeout=30.0).data
        os.kill(pid, signal.SIGKILL)  # from outside, between messages
        wait_until(lambda: system.health().actors["root/w"].restarts == 1)
        assert system.health().actors["root/w"].kills == {"died": 1}
        assert system.ask("root/w", "pid", timeout=30.0).data != pid


def test_an_allocation_past_the_memory_limit_fails_that_message_only() -> None:
    with start(_tree(memory_limit_mb=512)) as system:
        answer = system.ask("root/w", "big", timeout=30.0)
        assert answer.status is ExecutionStatus.FAILURE
        assert answer.reason is FailureReason.MEMORY
        assert system.ask("root/w", "next", timeout=30.0).data == ("worker", "next")
        health = system.health().actors["root/w"]
        assert health.kills == {"memory": 1}
        assert health.restarts == 1


def test_a_memory_limit_needs_process_isolation() -> None:
    with pytest.raises(ValidationError, match="memory_limit_mb needs isolation='process'"):
        ChildSpec("w", Worker, memory_limit_mb=512)


def test_what_cannot_be_pickled_is_a_typed_error_and_harms_nobody() -> None:
    with start(_tree()) as system:
        pid = system.ask("root/w", "pid", timeout=30.0).data
        sent = system.ask("root/w", threading.Lock(), timeout=30.0)
        assert sent.status is ExecutionStatus.INVALID_INPUT
        assert sent.reason is FailureReason.INVALID_INPUT
        assert "cannot pickle" in (sent.error or "")
        returned = system.ask("root/w", "lock", timeout=30.0)
        assert returned.status is ExecutionStatus.INVALID_OUTPUT
        assert returned.reason is FailureReason.INVALID_OUTPUT
        assert system.ask("root/w", "pid", timeout=30.0).data == pid  # the same worker
        assert system.health().actors["root/w"].restarts == 0


def test_an_unpicklable_factory_argument_fails_the_start_with_its_cause() -> None:
    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=0),
        children=[ChildSpec("w", Worker, isolation="process")],
    )
    with start(tree) as system:
        from supervisor import ChildStartError

        spec = ChildSpec("bad", Echo, isolation="process", kwargs={"lock": threading.Lock()})
        with pytest.raises(ChildStartError, match="cannot cross to a worker process"):
            system.start_child("root", spec)
        assert system.ask("root/w", "x", timeout=30.0).ok


def test_an_agent_in_a_worker_reaches_the_rest_of_the_tree() -> None:
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("w", Worker, isolation="process"),
            ChildSpec("a", AsyncWorker, isolation="process"),
            ChildSpec("echo", Echo),
        ],
    )
    with start(tree) as system:
        assert system.ask("root/w", "ask", timeout=30.0).data == "through the parent"
        assert system.ask("root/w", "tell", timeout=30.0).data == "sent"
        kind, data, pid = system.ask("root/a", "hi", timeout=30.0).data
        assert (kind, data) == ("async", "hi")
        assert pid != os.getpid()


def test_a_fallback_answers_for_a_hung_worker_and_the_breaker_counts_it() -> None:
    from strategies import BreakerPolicy

    tree = Supervisor(
        "root",
        strategy=OneForOne(max_restarts=20),
        children=[
            ChildSpec(
                "w",
                Worker,
                isolation="process",
                message_timeout=0.3,
                fallback=Stand,
                breaker=BreakerPolicy(fail_max=2, reset_timeout=60.0),
            ),
        ],
    )
    with start(tree) as system:
        for _ in range(2):
            answer = system.ask("root/w", "sleep", timeout=30.0)
            assert answer.data == "fallback"
            assert answer.reason is FailureReason.DEADLINE
        refused = system.ask("root/w", "x", timeout=30.0)
        assert refused.data == "fallback"
        assert refused.reason is FailureReason.BREAKER_OPEN


_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {root!r})
    from tests.test_process_isolation import Worker
    from supervisor import ChildSpec, Supervisor, start
    system = start(Supervisor("root", children=[ChildSpec("w", Worker, isolation="process")]))
    print(system.ask("root/w", "pid", timeout=30.0).data, flush=True)
    time.sleep(60)  # sleep-ok: the parent that gets SIGTERMed
    """
)


@pytest.mark.timeout(60)
def test_no_worker_outlives_a_parent_stopped_by_sigterm() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT.format(root=root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert not _gone(pid)
        parent.send_signal(signal.SIGTERM)  # no atexit, no shutdown: the worker must still go
        parent.wait(timeout=30)
        wait_until(lambda: _gone(pid), timeout=10.0)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)


def test_llm_clients_cross_to_a_worker_and_an_llm_agent_answers_there() -> None:
    """The README passes the model client in kwargs; it must survive the trip (its locks and
    connections are made anew in the worker) and keep its key out of sight."""
    import cloudpickle

    from actors import ChaosLLM, OpenAICompatibleLLM, ScriptedLLM
    from tests.llm_agents import ANSWER, Decision, ToolLog, desk_class

    remote = OpenAICompatibleLLM(base_url="https://user:pw@example.invalid/v1", api_key="sk-x")
    for client in (ScriptedLLM([ANSWER]), ChaosLLM(ScriptedLLM([ANSWER]), seed=1), remote):
        copy = cloudpickle.loads(cloudpickle.dumps(client))
        assert type(copy) is type(client)
    assert "sk-x" not in repr(cloudpickle.loads(cloudpickle.dumps(remote)))

    spec = ChildSpec(
        "desk", desk_class(ToolLog()), kwargs={"llm": ScriptedLLM([ANSWER])}, isolation="process"
    )
    with start(Supervisor("root", children=[spec])) as system:
        answer = system.ask("root/desk", {"id": 1, "text": "where is my order?"}, timeout=30.0)
        assert answer.status is ExecutionStatus.SUCCESS, answer.error
        assert answer.data == Decision(action="respond", reply="on its way")


def test_metrics_show_where_an_agent_runs_its_worker_and_its_kills() -> None:
    with start(_tree(message_timeout=0.5)) as system:
        assert system.ask("root/w", "sleep", timeout=30.0).status is ExecutionStatus.TIMEOUT
        pid = system.ask("root/w", "pid", timeout=30.0).data
        body = render_metrics(system).decode()
    assert 'hivekeeper_isolation{isolation="process",path="root/w"} 1.0' in body
    assert 'hivekeeper_isolation{isolation="thread",path="root/echo"} 1.0' in body
    assert 'hivekeeper_kills_total{path="root/w",reason="deadline"} 1.0' in body
    assert f'hivekeeper_worker_pid{{path="root/w"}} {float(pid)}' in body
    assert 'hivekeeper_worker_rss_bytes{path="root/w"}' in body
    assert 'hivekeeper_worker_pid{path="root/echo"}' not in body
    wait_until(lambda: _gone(pid))


def test_a_context_call_between_messages_is_refused_and_the_link_stays_whole(tmp_path) -> None:
    """Between messages nobody in the parent listens for a context call: one made then (a
    thread the handler left behind) must fail at once, not steal the next message."""
    trigger, out = tmp_path / "go", tmp_path / "out"
    tree = Supervisor(
        "root",
        children=[ChildSpec("l", Later, isolation="process"), ChildSpec("echo", Echo)],
    )
    with start(tree) as system:
        assert system.ask("root/l", (str(trigger), str(out)), timeout=30.0).data == "answered"
        trigger.touch()
        wait_until(out.exists, timeout=20.0)
        assert out.read_text(encoding="utf-8").startswith("refused: self.context.tell() outside")
        again = system.ask("root/l", (str(tmp_path / "never"), str(tmp_path / "x")), timeout=30.0)
        assert again.data == "answered"
