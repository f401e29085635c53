"""One asyncio event loop per process, on its own thread, for every async handler.

10,000 async agents share this loop (one selector, one self-pipe) instead of owning 10,000.
A host thread hands its coroutine over and waits for the result; when the handler overruns
its deadline the watchdog cancels the concurrent future, which cancels the task on the loop
(an HTTP request in flight is closed by its client's cancellation handling).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ClassVar

__all__ = ["SharedLoop"]


class SharedLoop:
    _instance: ClassVar[SharedLoop | None] = None
    _guard: ClassVar[threading.Lock] = threading.Lock()
    THREAD_NAME = "hivekeeper-asyncio"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # sync tools called from async handlers run here, never on the loop itself
        self.loop.set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix=f"{self.THREAD_NAME}-worker")
        )
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name=self.THREAD_NAME, daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    @classmethod
    def get(cls) -> SharedLoop:
        with cls._guard:
            if cls._instance is None:
                cls._instance = SharedLoop()
            return cls._instance

    @classmethod
    def is_loop_thread(cls) -> bool:
        """True on the shared loop's own thread (where blocking would stall every agent)."""
        instance = cls._instance
        return instance is not None and threading.current_thread() is instance.thread

    def run(self, awaitable: Awaitable[Any], on_future: Callable[[Future[Any]], None]) -> Any:
        """Run on the shared loop; block this (host) thread until it is done or cancelled."""

        async def wrap() -> Any:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(wrap(), self.loop)
        on_future(future)
        return future.result()
