"""System.start_child_async / stop_child_async: tree changes awaited from an event loop (an
async server starting one agent per conversation), with start_child's checks and errors."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from actors import Agent
from strategies import OneForOne
from supervisor import (
    ChildSpec,
    ChildStartError,
    DuplicateChildError,
    NotAChildError,
    Supervisor,
    SupervisorUnavailableError,
    UnknownPathError,
    start,
)
from tests.agents import Echo


class AsyncEcho(Agent):
    async def handle(self, message: Any) -> Any:
        return message


class FailsToStart(Agent):
    def on_start(self) -> None:
        raise RuntimeError("no model configured")

    def handle(self, message: Any) -> Any:
        return message


class SlowStart(Agent):
    """on_start waits on the class's gate (a thread agent: it blocks only its own thread)."""

    gate = threading.Event()
    entered = threading.Event()

    def on_start(self) -> None:
        SlowStart.entered.set()
        assert SlowStart.gate.wait(30)

    def handle(self, message: Any) -> Any:
        return message


def tree() -> Supervisor:
    return Supervisor("root", children=[Supervisor("chats", strategy=OneForOne())])


def task(id_: str) -> ChildSpec:
    return ChildSpec(id_, AsyncEcho, isolation="task")


def test_started_children_answer_and_stopped_ones_are_gone():
    with start(tree()) as system:

        async def main() -> list[str]:
            paths = await asyncio.gather(
                *(system.start_child_async("root/chats", task(f"c{i}")) for i in range(50))
            )
            answers = [await system.ask_async(p, p, timeout=5.0) for p in paths]
            assert [a.data for a in answers] == paths
            await system.stop_child_async(paths[0])
            return paths

        paths = asyncio.run(main())
        assert paths == [f"root/chats/c{i}" for i in range(50)]
        assert system.health().actors["root/chats"].children == paths[1:]
        with pytest.raises(UnknownPathError):
            system.ask(paths[0], "x", timeout=5.0)


def test_bad_requests_raise_the_errors_start_child_raises():
    with start(tree()) as system:

        async def main() -> None:
            await system.start_child_async("root/chats", task("a"))
            with pytest.raises(DuplicateChildError):
                await system.start_child_async("root/chats", task("a"))
            with pytest.raises(UnknownPathError):
                await system.start_child_async("root/nowhere", task("b"))
            with pytest.raises(TypeError, match="ChildSpec or Supervisor"):
                await system.start_child_async("root/chats", "not a spec")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="timeout"):
                await system.start_child_async("root/chats", task("c"), timeout=-1.0)
            with pytest.raises(ChildStartError, match="no model configured"):
                await system.start_child_async("root/chats", ChildSpec("f", FailsToStart))
            with pytest.raises(NotAChildError):
                await system.stop_child_async("root")
            with pytest.raises(UnknownPathError):
                await system.stop_child_async("root/chats/missing")

        asyncio.run(main())
        assert system.health().actors["root/chats"].children == ["root/chats/a"]
        assert system.ask("root/chats/a", "still here", timeout=5.0).data == "still here"


def test_an_unanswered_start_times_out_and_the_start_still_completes_after_the_loop_closed():
    SlowStart.gate.clear()
    SlowStart.entered.clear()
    with start(tree()) as system:

        async def main() -> None:
            with pytest.raises(SupervisorUnavailableError, match=r"within 0\.05s"):
                await system.start_child_async("root/chats", ChildSpec("slow", SlowStart),
                                               timeout=0.05)  # fmt: skip

        asyncio.run(main())  # its loop is closed when the start completes
        assert SlowStart.entered.wait(5.0)
        SlowStart.gate.set()
        assert system.ask("root/chats/slow", "up", timeout=10.0).data == "up"
        assert system.start_child("root/chats", ChildSpec("next", Echo)) == "root/chats/next"


def test_a_cancelled_await_does_not_undo_the_start_nor_upset_the_supervisor():
    SlowStart.gate.clear()
    SlowStart.entered.clear()
    with start(tree()) as system:

        async def main() -> None:
            waiting = asyncio.create_task(
                system.start_child_async("root/chats", ChildSpec("slow", SlowStart))
            )
            await asyncio.to_thread(SlowStart.entered.wait, 5.0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            SlowStart.gate.set()
            answer = await system.ask_async("root/chats/slow", "up", timeout=10.0)
            assert answer.data == "up"
            assert await system.start_child_async("root/chats", task("t")) == "root/chats/t"

        asyncio.run(main())
        assert system.health().actors["root"].state == "running"


def test_a_task_agent_starts_and_stops_siblings_without_a_thread_per_wait():
    """From a task agent's handler, start_child_async waits on its own loop: 20 agents each
    starting a child at once take no extra thread (asyncio.to_thread would take one each)."""

    class Spawner(Agent):
        async def handle(self, message: Any) -> Any:
            path = await self.context.start_child_async("root/chats", task(f"kid-{message}"))
            await self.context.stop_child_async(path)
            return path

    spawners = [ChildSpec(f"s{i}", Spawner, isolation="task") for i in range(20)]
    with start(Supervisor("root", children=[Supervisor("chats"), *spawners])) as system:
        before = {t.name for t in threading.enumerate()}

        async def main() -> list[Any]:
            asks = (system.ask_async(f"root/s{i}", i, timeout=10.0) for i in range(20))
            return [r.data for r in await asyncio.gather(*asks)]

        assert asyncio.run(main()) == [f"root/chats/kid-{i}" for i in range(20)]
        started = {t.name for t in threading.enumerate()} - before
        assert not [name for name in started if name.startswith("hivekeeper-tool")], started
        assert system.health().actors["root/chats"].children == []
