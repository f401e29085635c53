"""Async handlers are isolated from each other: each host thread runs its own event loop.

Regression tests for what one async agent could do to all the others while every async
handler shared one process-wide loop: SystemExit/KeyboardInterrupt killed that loop for every
system in the process, and one blocking handler (or a pool of hung sync tools) stalled them all.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any

import pytest

from actors import Agent, ExecutionStatus, FailureReason
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start

from .agents import Gate


class AsyncEcho(Agent):
    async def handle(self, message: Any) -> Any:
        await asyncio.sleep(0)
        return f"echo:{message}"


class Exits(Agent):
    """Raises what its message names: process-ending exceptions in an async handler."""

    async def handle(self, message: Any) -> Any:
        await asyncio.sleep(0)
        if message == "exit":
            raise SystemExit(3)
        if message == "interrupt":
            raise KeyboardInterrupt
        if message == "argparse":  # a sync tool that exits on bad input, awaited in a thread

            def tool(argv: list[str]) -> Any:
                parser = argparse.ArgumentParser(prog="tool", exit_on_error=True)
                parser.add_argument("--count", type=int, required=True)
                return parser.parse_args(argv)

            return await asyncio.to_thread(tool, ["--count", "many"])
        return "ok"


def _tree(*children: ChildSpec) -> Supervisor:
    return Supervisor("root", strategy=OneForOne(max_restarts=50), children=list(children))


@pytest.mark.parametrize("message", ["exit", "interrupt", "argparse"])
def test_a_process_ending_exception_in_an_async_handler_is_a_crash_of_that_agent_only(
    message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _tree(ChildSpec("x", Exits), ChildSpec("echo", AsyncEcho))
    with start(tree) as system, start(_tree(ChildSpec("other", AsyncEcho))) as other:
        crashed = system.ask("root/x", message, timeout=10.0)
        assert crashed.status is ExecutionStatus.FAILURE
        assert crashed.reason is FailureReason.CRASH
        # every other async agent, in this system and another one, still answers at once
        for _ in range(3):
            assert system.ask("root/echo", "hi", timeout=10.0).data == "echo:hi"
            assert other.ask("root/other", "hi", timeout=10.0).data == "echo:hi"
        # the crashed agent was restarted and answers again
        assert system.ask("root/x", "fine", timeout=10.0).data == "ok"
        health = system.health()
        assert health.actors["root/echo"].restarts == 0
        assert health.actors["root/x"].restarts == 1
        assert health.state == "running"
    # and a system started afterwards works too
    with start(_tree(ChildSpec("later", AsyncEcho))) as later:
        assert later.ask("root/later", "hi", timeout=10.0).data == "echo:hi"
    capsys.readouterr()  # argparse printed its usage to stderr


class BlocksItsLoop(Agent):
    """An async handler that blocks its thread (time.sleep-like) instead of awaiting."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def handle(self, message: Any) -> Any:
        self.gate.entered.set()
        self.gate.opened.wait(30.0)  # blocking, not awaited
        return "late"


def test_an_async_handler_that_blocks_is_a_hang_of_that_agent_only() -> None:
    gate = Gate()
    tree = _tree(
        ChildSpec("blocker", BlocksItsLoop, args=(gate,), message_timeout=0.5),
        ChildSpec("echo", AsyncEcho),
    )
    try:
        with start(tree) as system:
            pending = system.ask_future("root/blocker", "x", timeout=10.0)
            gate.wait_entered()
            # while the blocker holds its thread, the other async agent answers every ask
            for i in range(20):
                assert system.ask("root/echo", i, timeout=10.0).data == f"echo:{i}"
            answer = pending.result()
            assert answer.status is ExecutionStatus.TIMEOUT
            assert answer.reason is FailureReason.DEADLINE
            health = system.health()
            assert health.state == "running"
            assert health.actors["root/echo"].restarts == 0
            assert health.actors["root/echo"].failures == {}
    finally:
        gate.release()


class HangsItsTools(Agent):
    """Starts 40 sync tool calls that never return (until the test releases them)."""

    def __init__(self, release: threading.Event, entered: threading.Event) -> None:
        self.release = release
        self.entered = entered

    async def handle(self, message: Any) -> Any:
        def tool() -> None:
            self.entered.set()
            self.release.wait(30.0)

        await asyncio.gather(*(asyncio.to_thread(tool) for _ in range(40)))
        return "done"


class UsesATool(Agent):
    async def handle(self, message: Any) -> Any:
        return await asyncio.to_thread(lambda: f"tool:{message}")


def test_hung_sync_tools_of_one_async_agent_starve_no_other_agents_tools() -> None:
    release, entered = threading.Event(), threading.Event()
    tree = _tree(
        ChildSpec("hog", HangsItsTools, args=(release, entered), message_timeout=0.5),
        ChildSpec("user", UsesATool),
    )
    try:
        with start(tree) as system:
            pending = system.ask_future("root/hog", "go", timeout=10.0)
            assert entered.wait(10.0)
            for i in range(5):
                assert system.ask("root/user", i, timeout=10.0).data == f"tool:{i}"
            assert pending.result().status is ExecutionStatus.TIMEOUT
    finally:
        release.set()


def test_tool_threads_of_an_async_agent_are_daemons_and_end_with_their_host() -> None:
    seen: list[threading.Thread] = []

    class Records(Agent):
        async def handle(self, message: Any) -> Any:
            return await asyncio.to_thread(lambda: seen.append(threading.current_thread()))

    with start(_tree(ChildSpec("r", Records))) as system:
        assert system.ask("root/r", "x", timeout=10.0).ok
    assert seen
    assert seen[0].daemon  # a hung tool can never keep the process from exiting
    seen[0].join(5.0)
    assert not seen[0].is_alive()


def test_a_blocking_ask_inside_an_async_handler_is_refused_with_a_clear_error() -> None:
    class Blocks(Agent):
        async def handle(self, message: Any) -> Any:
            return self.context.ask("root/echo", "x").status.value

    with start(_tree(ChildSpec("b", Blocks), ChildSpec("echo", AsyncEcho))) as system:
        answer = system.ask("root/b", "x", timeout=10.0)
        assert answer.status is ExecutionStatus.FAILURE
        assert "ask_async" in (answer.error or "")
