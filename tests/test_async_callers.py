"""ask_async / tell_async from code that lives in an event loop: never blocks the loop."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import ChildSpec, ExecutionStatus, Supervisor, UnknownPathError, start
from tests.agents import Blocking, Echo, Gate


def test_many_concurrent_asks_from_a_running_loop():
    tree = Supervisor("root", children=[ChildSpec(f"e{i}", Echo) for i in range(4)])

    async def main(system) -> list:  # type: ignore[no-untyped-def]
        return await asyncio.gather(
            *(system.ask_async(f"root/e{i % 4}", i, timeout=10.0) for i in range(400))
        )

    with start(tree) as system:
        results = asyncio.run(main(system))
    assert [r.data for r in results] == list(range(400))
    assert {r.status for r in results} == {ExecutionStatus.SUCCESS}


def test_waiting_asks_never_block_the_loop():
    gate = Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("slow", Blocking, args=(gate,)), ChildSpec("e", Echo)]
    )

    async def main(system) -> tuple:  # type: ignore[no-untyped-def]
        slow = asyncio.ensure_future(system.ask_async("root/slow", "block", timeout=10.0))
        ticks = 0
        while not gate.entered.is_set():
            await asyncio.sleep(0)
        for _ in range(50):  # the loop keeps running other work while `slow` waits
            ticks += 1
            assert (await system.ask_async("root/e", ticks, timeout=5.0)).data == ticks
        assert not slow.done()
        gate.release()
        return ticks, await slow

    try:
        with start(tree) as system:
            ticks, slow = asyncio.run(main(system))
    finally:
        gate.release()
    assert ticks == 50
    assert slow.status is ExecutionStatus.SUCCESS


def test_ask_async_times_out_with_a_result_and_raises_only_for_caller_errors():
    gate = Gate()
    tree = Supervisor(
        "root", children=[ChildSpec("slow", Blocking, args=(gate,), message_timeout=None)]
    )

    async def main(system) -> object:  # type: ignore[no-untyped-def]
        result = await system.ask_async("root/slow", "block", timeout=0.2)
        with pytest.raises(UnknownPathError):
            await system.ask_async("root/nope", "x", timeout=1.0)
        await system.tell_async("root/slow", "after")
        return result

    try:
        with start(tree) as system:
            result = asyncio.run(main(system))
    finally:
        gate.release()
    assert result.status is ExecutionStatus.TIMEOUT
