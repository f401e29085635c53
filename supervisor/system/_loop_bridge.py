"""answered: await, from an event loop, a value another thread hands over through a
done-callback (an ask's Reply, a start_child future), without blocking the loop or taking a
thread to wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

__all__ = ["answered"]

_T = TypeVar("_T")


async def answered(add_done_callback: Callable[[Callable[[_T], None]], None], timeout: float) -> _T:
    """The value add_done_callback's callback is called with, awaited at most `timeout`
    seconds (TimeoutError past it). What it waits on is never cancelled, by the timeout or by
    the awaiting task being cancelled: its owner settles it whatever the caller does. The
    value reaches the loop through call_soon_threadsafe, dropped if the loop has closed
    meanwhile (the caller gave up and closed its loop)."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[_T] = loop.create_future()

    def settle(value: _T) -> None:
        if not waiter.done():
            waiter.set_result(value)

    def deliver(value: _T) -> None:
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(settle, value)

    add_done_callback(deliver)
    return await asyncio.wait_for(asyncio.shield(waiter), timeout)
