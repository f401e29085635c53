"""RayRunner (`ChildSpec(isolation="ray")`): the agent is built and runs in a Ray actor, on
any node of a Ray cluster; its slot, mailbox, breaker, fallbacks and deadlines stay here, with
its host, and every decision stays the supervisor's. Ray only places, calls and kills.

The actor speaks the worker-process protocol (_worker.py) over Ray calls instead of a pipe:
`put` hands it the parent's next message, `take` returns the worker's next reply (a result, an
event, a context request), `exchange` does both in one round trip. So everything a process
agent has, a Ray agent has: typed errors for what cannot be pickled, `self.context` relayed
through the parent, events logged here, async handlers on the actor's own loop.

- A handler past its deadline: the actor is `ray.kill`ed (no Ray restart) and replaced by a
  pre-started spare (Ray's own cold restart measured ~1.1 s).
- An actor that dies (`ray.kill` from outside, its process killed, its node lost) is seen by
  the pool's reaper within 0.1 s, or at once by a message waiting on it: a crash.
- Ray itself, and the warm spares every system of the process shares: _ray_session.py.
"""

from __future__ import annotations

import threading
from typing import Any

from ._process_runner import ProcessRunner
from ._ray_session import SPARES, acquire_ray, release_ray
from ._ray_worker import RayWorker, StoppingError, kill_actor, place
from ._worker_pool import report_exit

__all__ = ["RayPool", "RayRunner"]

_REAP_POLL_S = 0.1


class RayRunner(ProcessRunner):
    isolation = "ray"
    where = "Ray actor"

    def _take_worker(self) -> RayWorker:
        slot = self._host.slot
        runtime = slot.runtime
        pool = runtime.service("ray", lambda: RayPool(runtime.ray_address))
        timeout = slot.spec.start_timeout or 60.0
        module = getattr(slot.spec.factory, "__module__", None)
        return pool.take(module, dict(slot.spec.ray_options or {}), timeout)


class RayPool:
    """The Ray actors of one system: each agent's, taken warm from the process's spares where
    one is ready, a reaper that sees them die, and every one killed when the system stops."""

    def __init__(self, address: str | None) -> None:
        self._owns_ray = acquire_ray(address)
        try:
            SPARES.open()
        except BaseException:
            if self._owns_ray:
                release_ray()
            raise
        self._released = False
        self._lock = threading.Lock()
        self._placed = threading.Condition(self._lock)
        self._creating: set[Any] = set()  # handles being placed now: close() kills them
        self._live: dict[Any, RayWorker] = {}  # park ref -> worker
        self._closed = False
        self._closing = threading.Event()
        self._reaper = threading.Thread(
            target=self._reap, name="hivekeeper-ray-reaper", daemon=True
        )
        self._reaper.start()

    def take(self, module: str | None, options: dict[str, Any], timeout: float) -> RayWorker:
        if self._closed:
            raise StoppingError
        worker = SPARES.take(module, options, timeout) or place(options, timeout, self._track)
        with self._lock:
            if not self._closed:
                self._live[worker.park_ref] = worker
                return worker
        worker.kill()  # close() ran meanwhile
        raise StoppingError

    def _track(self, handle: Any, placing: bool) -> None:
        with self._lock:
            if not placing:
                self._creating.discard(handle)
                self._placed.notify_all()
                return
            self._creating.add(handle)
            closed = self._closed
        if closed:  # never after close(): the placement ends now
            kill_actor(handle)

    def _reap(self) -> None:
        import ray  # noqa: PLC0415

        while not self._closing.is_set():
            with self._lock:
                refs = list(self._live)
            if not refs:
                self._closing.wait(_REAP_POLL_S)
                continue
            try:
                ready, _ = ray.wait(refs, num_returns=1, timeout=_REAP_POLL_S)
            except Exception:  # noqa: BLE001 - e.g. Ray shutting down under us
                self._closing.wait(_REAP_POLL_S)
                continue
            for ref in ready:
                with self._lock:
                    worker = self._live.pop(ref, None)
                report_exit(worker)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._live.values())
            creating = list(self._creating)
        for worker in workers:
            worker.kill()
        for handle in creating:  # a placement still under way ends now, not when it is done
            kill_actor(handle)
        with self._lock:
            self._placed.wait_for(lambda: not self._creating, timeout=10.0)
        self._closing.set()
        self._reaper.join(5.0)
        with self._lock:
            self._live.clear()
        self._release()

    def _release(self) -> None:
        with self._lock:
            released, self._released = self._released, True  # once, however often close() runs
        if released:
            return
        SPARES.close()
        if self._owns_ray:
            release_ray()
