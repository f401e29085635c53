"""Cost per async message of the loop design, against the shared-loop design it replaced,
measured in one run.

Run: python -m bench.async_loop_cost        (env: N=5000 REPEATS=5)

Until this change every `async def handle` ran on one process-wide event loop thread: the
host thread handed its coroutine over (run_coroutine_threadsafe) and waited for the concurrent
future. Now each host thread runs its own loop (supervisor/_async.py: HostLoop), so a blocking
or exiting async handler harms only its own host. Rows (ask round trips through a System):

  sync handler              the reference: Agent.handle returns at once
  async, own loop           async def handle on its host's loop (this design)
  async, shared loop        the old design: the coroutine is handed to one loop thread that
                            every agent shares, and the host thread waits for it

plus the hand-off alone, without the System, from a plain thread.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from actors import Agent
from bench._common import pct, quiet
from supervisor import ChildSpec, Supervisor, start
from supervisor.hosts._async import HostLoop

N = int(os.environ.get("N", "5000"))
REPEATS = int(os.environ.get("REPEATS", "5"))


class SharedLoopThread:
    """The old design's mechanism, as it was: one loop on its own thread for everyone."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        async def wrap() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)
        self.loop.close()


SHARED: SharedLoopThread | None = None


async def answer(message: Any) -> Any:
    return message


class Sync(Agent):
    def handle(self, message: Any) -> Any:
        return message


class OwnLoop(Agent):
    async def handle(self, message: Any) -> Any:
        return await answer(message)


class ViaSharedLoop(Agent):
    """A sync handler doing what the host used to do with an async handler's coroutine."""

    def handle(self, message: Any) -> Any:
        assert SHARED is not None
        return SHARED.run(answer(message))


def _round_trips(call: Callable[[int], Any]) -> list[float]:
    samples = []
    for i in range(N):
        t0 = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t0)
    return samples


def main() -> None:
    global SHARED
    quiet()
    SHARED = SharedLoopThread()
    rows: dict[str, list[float]] = {}
    tree = Supervisor(
        "bench",
        children=[
            ChildSpec("sync", Sync),
            ChildSpec("own", OwnLoop),
            ChildSpec("shared", ViaSharedLoop),
        ],
    )
    own_loop = HostLoop("bench")
    with start(tree) as system:
        for _ in range(REPEATS):  # interleaved, so drift hits every row alike
            for name in ("sync", "own", "shared"):
                path = f"bench/{name}"
                samples = _round_trips(lambda i, p=path: system.ask(p, i, timeout=10.0))
                rows.setdefault(f"ask: {name}", []).append(statistics.median(samples))
                rows.setdefault(f"ask p99: {name}", []).append(pct(samples, 0.99))
            hand_own = _round_trips(lambda i: own_loop.run(answer(i), lambda _: None))
            hand_shared = _round_trips(lambda i: SHARED.run(answer(i)))  # type: ignore[union-attr]
            rows.setdefault("hand-off only: own loop", []).append(statistics.median(hand_own))
            rows.setdefault("hand-off only: shared loop", []).append(statistics.median(hand_shared))
    own_loop.close()
    SHARED.close()

    best = {name: min(values) * 1e6 for name, values in rows.items()}
    print(f"async handler cost, N={N} x {REPEATS} (best median of the repeats, µs)")
    for name, value in best.items():
        print(f"  {name:<28} {value:8.1f}")
    sync = best["ask: sync"]
    own = best["ask: own"]
    shared = best["ask: shared"]
    print(f"  async over sync, own loop     +{own - sync:.1f} µs per message")
    print(f"  async over sync, shared loop  +{shared - sync:.1f} µs per message")
    print(f"  own loop / shared loop (ask p50)  {own / shared:.2f}x")
    print(
        f"  own loop / shared loop (ask p99)  {best['ask p99: own'] / best['ask p99: shared']:.2f}x"
    )


if __name__ == "__main__":
    main()
