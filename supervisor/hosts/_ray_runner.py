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
- Ray is started once per process when the first Ray agent starts (or joined, with
  `start(tree, ray_address=...)`), and shut down with the last system that started it; a Ray
  the application initialised itself is used as it is and never shut down here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from ._process_runner import ProcessRunner
from ._ray_actor import remote_class
from ._worker_pool import process_rss_mb, report_exit

__all__ = ["RayPool", "RayRunner", "RayWorker"]

_SPARES = 1
_REAP_POLL_S = 0.1
_KILL_GRACE_S = 5.0  # a call on a killed actor fails within this, whatever Ray says


class RayRunner(ProcessRunner):
    isolation = "ray"
    where = "Ray actor"

    def _take_worker(self) -> RayWorker:
        slot = self._host.slot
        runtime = slot.runtime
        pool = runtime.service("ray", lambda: RayPool(runtime.name, runtime.ray_address))
        timeout = slot.spec.start_timeout or 60.0
        module = getattr(slot.spec.factory, "__module__", None)
        return pool.take(module, dict(slot.spec.ray_options or {}), timeout)


# -- one Ray for the process ----------------------------------------------------------------

_session_lock = threading.Lock()
_session_users = 0  # pools using the Ray this module started


def _local_init_options() -> dict[str, Any]:
    """A local Ray for one machine: no dashboard, a small object store, this machine's cores.
    Ray 2.60 cannot be kept on 127.0.0.1: it maps a loopback node address to the machine's
    own, and its servers listen on every interface; its token authentication (on by
    default) is what guards them, so it is left on."""
    return {
        "address": "local",  # a new Ray, even where RAY_ADDRESS or a `ray start` node exists
        "include_dashboard": False,
        "num_cpus": os.cpu_count() or 1,
        "object_store_memory": 128 * 1024 * 1024,
        "logging_level": logging.WARNING,
        "ignore_reinit_error": True,
    }


def _acquire_ray(address: str | None) -> bool:
    """Make sure Ray is initialised; True if this module started it (and so must end it)."""
    global _session_users  # noqa: PLW0603 - one Ray per process
    import ray  # noqa: PLC0415

    with _session_lock:
        if ray.is_initialized():
            if _session_users == 0:
                return False  # the application's own Ray: used, never shut down here
            _session_users += 1
            return True
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if address is not None:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(**_local_init_options())
        _session_users += 1
        return True


def _release_ray() -> None:
    global _session_users  # noqa: PLW0603
    import ray  # noqa: PLC0415

    with _session_lock:
        _session_users -= 1
        if _session_users == 0 and ray.is_initialized():
            ray.shutdown()


# -- the parent's side -----------------------------------------------------------------------


class _RayLink:
    """The parent's end: a send is held until the next receive, which carries it (one round
    trip per exchange); a second send before that goes on its own, in order."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._seq = 0
        self._pending: tuple[int, bytes] | None = None
        self.killed_at: float | None = None  # set by RayWorker.kill: waits end soon after

    def send_bytes(self, buf: bytes) -> None:
        if self._pending is not None:
            self._handle.put.remote(*self._pending)
        self._pending = (self._seq, buf)
        self._seq += 1

    def flush(self) -> None:
        """Send what is held now, without waiting for a reply."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self._handle.put.remote(*pending)

    def recv_bytes(self) -> bytes:
        import ray  # noqa: PLC0415

        pending, self._pending = self._pending, None
        ref = (
            self._handle.exchange.remote(*pending)
            if pending is not None
            else self._handle.take.remote()
        )
        while True:
            try:
                data: bytes = ray.get(ref, timeout=_KILL_GRACE_S)
            except ray.exceptions.GetTimeoutError:
                killed = self.killed_at
                if killed is not None and time.monotonic() - killed > _KILL_GRACE_S:
                    # ray.kill did not reach it (GCS unreachable?): we gave up on it anyway
                    raise EOFError("killed, and no word from Ray since") from None
                continue
            except ray.exceptions.RayError as exc:  # the actor died or was killed
                text = str(exc).strip()
                raise EOFError(text.splitlines()[0] if text else type(exc).__name__) from exc
            return data


class RayWorker:
    """One agent's Ray actor, as the runner sees a worker (_process_runner.RemoteWorker)."""

    def __init__(self, handle: Any, pid: int, node_id: str, actor_id: str, local: bool) -> None:
        self.handle = handle
        self.pid: int | None = pid
        self.conn = _RayLink(handle)
        self.on_exit: Any = None
        self.park_ref = handle.park.remote()
        self._node_id = node_id
        self._actor_id = actor_id
        self._local = local

    @property
    def label(self) -> str:
        return f"Ray actor {self._actor_id[:12]} (pid {self.pid})"

    @property
    def node_id(self) -> str | None:
        return self._node_id

    @property
    def actor_id(self) -> str | None:
        return self._actor_id

    def alive(self) -> bool:
        import ray  # noqa: PLC0415

        ready, _ = ray.wait([self.park_ref], timeout=0)
        return not ready

    def kill(self) -> None:
        import ray  # noqa: PLC0415

        if self.conn.killed_at is None:
            self.conn.killed_at = time.monotonic()
        with contextlib.suppress(Exception):
            ray.kill(self.handle, no_restart=True)

    def exit_description(self) -> str:
        import ray  # noqa: PLC0415

        try:
            ray.get(self.park_ref, timeout=1.0)
        except ray.exceptions.GetTimeoutError:
            return "still running"
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()
            return first[0][:300] if first else type(exc).__name__
        return "ended"

    def rss_mb(self) -> float | None:
        if not self._local or self.pid is None:
            return None  # another node's /proc is not ours to read
        return process_rss_mb(self.pid)

    def close(self) -> None:
        self.kill()


class RayPool:
    """The Ray actors of one system: warm spares per set of ray_options, a reaper that sees
    actors die, and every actor killed when the system stops."""

    def __init__(self, name: str, address: str | None) -> None:
        self._name = name
        self._owns_ray = _acquire_ray(address)
        import ray  # noqa: PLC0415

        try:
            self._local_node = ray.get_runtime_context().get_node_id()
        except BaseException:
            self._release()
            raise
        self._starting = 0  # actors being created now (close waits for them)
        self._creating: set[Any] = set()  # their handles: close() kills them at once
        self._lock = threading.Lock()
        self._spare_ready = threading.Condition(self._lock)
        self._filling: set[str] = set()  # keys a refill thread is making a spare for
        self._spares: dict[str, deque[RayWorker]] = {}
        self._live: dict[Any, RayWorker] = {}  # park ref -> worker
        self._modules: dict[str, None] = {}
        self._closed = False
        self._closing = threading.Event()
        self._reaper = threading.Thread(
            target=self._reap, name="hivekeeper-ray-reaper", daemon=True
        )
        self._reaper.start()

    def take(self, module: str | None, options: dict[str, Any], timeout: float) -> RayWorker:
        key = repr(sorted(options.items(), key=lambda kv: kv[0]))
        deadline = time.monotonic() + timeout
        with self._lock:
            if module is not None and module != "__main__":
                self._modules.setdefault(module, None)
            if self._closed:
                msg = "the system is stopping: no new Ray actors"
                raise RuntimeError(msg)
            spares = self._spares.setdefault(key, deque())
            if not spares and key in self._filling:
                # a spare is on its way (restarts came faster than actors start): it is
                # nearer than a new one would be
                self._spare_ready.wait_for(
                    lambda: bool(spares) or key not in self._filling or self._closed, timeout
                )
            if self._closed:
                msg = "the system is stopping: no new Ray actors"
                raise RuntimeError(msg)
            worker = spares.popleft() if spares else None
            refill = key not in self._filling
            if refill:
                self._filling.add(key)
        if worker is None or not worker.alive():
            worker = self._start(options, max(0.1, deadline - time.monotonic()))
        if refill:
            threading.Thread(
                target=self._refill, args=(key, options, timeout), name="hivekeeper-ray-spares",
                daemon=True,
            ).start()  # fmt: skip
        return worker

    def _start(self, options: dict[str, Any], timeout: float) -> RayWorker:
        """A new actor, placed and answering. Never after close(): Ray would start itself
        again to make one (ray.remote initialises Ray on first use)."""
        import ray  # noqa: PLC0415

        with self._lock:
            if self._closed:
                msg = "the system is stopping: no new Ray actors"
                raise RuntimeError(msg)
            self._starting += 1
        handle = None
        try:
            handle = remote_class().options(**options).remote()
            with self._lock:
                self._creating.add(handle)
            try:
                pid, node_id, actor_id = ray.get(handle.info.remote(), timeout=timeout)
            except ray.exceptions.RayActorError as exc:  # killed by close() while placed
                msg = "the system is stopping: no new Ray actors"
                raise RuntimeError(msg) from exc
            except ray.exceptions.GetTimeoutError as exc:
                with contextlib.suppress(Exception):
                    ray.kill(handle, no_restart=True)
                msg = f"Ray could not place the actor within {timeout:.1f}s ({options=})"
                raise RuntimeError(msg) from exc
            worker = RayWorker(handle, pid, node_id, actor_id, local=node_id == self._local_node)
            with self._lock:
                if not self._closed:
                    self._live[worker.park_ref] = worker
                    return worker
            worker.kill()  # close() ran meanwhile
            msg = "the system is stopping: no new Ray actors"
            raise RuntimeError(msg)
        finally:
            with self._lock:
                self._creating.discard(handle)
                self._starting -= 1
                self._spare_ready.notify_all()

    def _refill(self, key: str, options: dict[str, Any], timeout: float) -> None:
        """Make spares for `key` until there are enough (one thread per key at a time)."""
        try:
            self._fill(key, options, timeout)
        finally:
            with self._lock:
                self._filling.discard(key)
                self._spare_ready.notify_all()

    def _fill(self, key: str, options: dict[str, Any], timeout: float) -> None:
        with contextlib.suppress(Exception):
            while True:
                with self._lock:
                    if self._closed or len(self._spares.get(key, ())) >= _SPARES:
                        return
                spare = self._start(options, timeout)
                with self._lock:
                    modules = tuple(self._modules)
                if modules:
                    import cloudpickle  # noqa: PLC0415

                    spare.conn.send_bytes(cloudpickle.dumps(("import", modules)))
                    spare.conn.flush()
                with self._lock:
                    if self._closed:
                        spare.kill()
                        return
                    self._spares.setdefault(key, deque()).append(spare)
                    self._spare_ready.notify_all()

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
        import ray  # noqa: PLC0415

        with self._lock:
            self._closed = True
            self._spare_ready.notify_all()
            workers = [w for spares in self._spares.values() for w in spares]
            workers += list(self._live.values())
            self._spares.clear()
        for worker in workers:
            worker.kill()
        with self._lock:
            creating = list(self._creating)
        for handle in creating:  # a placement still under way ends now, not when it is done
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
        with self._lock:  # actors being created now are killed as they come (see _start)
            self._spare_ready.wait_for(lambda: self._starting == 0, timeout=10.0)
        self._closing.set()
        self._reaper.join(5.0)
        with self._lock:
            self._live.clear()
        self._release()

    def _release(self) -> None:
        owns, self._owns_ray = self._owns_ray, False  # once, however often close() runs
        if owns:
            _release_ray()
