"""The process's Ray, and its warm actors.

- Ray is started once per process when the first Ray agent starts (or joined, with
  `start(tree, ray_address=...)`), and shut down with the last system that started it; a Ray
  the application initialised itself is used as it is and never shut down here.
- Spares: warm actors (placed, answering, never yet given an agent), one per set of
  `ray_options` in use, so a restart takes one instead of waiting seconds for a cold actor. One
  filler thread makes them while a system (or a `warm_ray_actors` block) is open; they are
  killed when the last one closes, unless a `warm_ray_actors` block keeps them for the next
  system (a service that starts systems often, a test session).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import structlog

from ._ray_worker import RayWorker, StoppingError, kill_actor, place

__all__ = [
    "SPARES",
    "SpareActors",
    "acquire_ray",
    "local_init_options",
    "options_key",
    "release_ray",
    "warm_ray_actors",
]

_log = structlog.get_logger("hivekeeper.ray")

_session_lock = threading.Lock()
_session_users = 0  # users of the Ray this module started


def local_init_options() -> dict[str, Any]:
    """A local Ray for one machine: no dashboard, a small object store, this machine's cores,
    and its workers at the driver's priority (Ray starts them at nice 15: on a busy machine
    an actor then took 3x as long to start, and every call on it waited as long). Ray 2.60
    cannot be kept on 127.0.0.1: it maps a loopback node address to the machine's own, and
    its servers listen on every interface; its token authentication (on by default) is what
    guards them, so it is left on."""
    return {
        "address": "local",  # a new Ray, even where RAY_ADDRESS or a `ray start` node exists
        "include_dashboard": False,
        "num_cpus": os.cpu_count() or 1,
        "object_store_memory": 128 * 1024 * 1024,
        "logging_level": logging.WARNING,
        "ignore_reinit_error": True,
        "_system_config": {"worker_niceness": 0},
    }


def acquire_ray(address: str | None) -> bool:
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
            ray.init(**local_init_options())
        _session_users += 1
        return True


def release_ray() -> None:
    global _session_users  # noqa: PLW0603
    import ray  # noqa: PLC0415

    with _session_lock:
        _session_users -= 1
        if _session_users == 0 and ray.is_initialized():
            SPARES.kill_all()
            ray.shutdown()


def options_key(options: dict[str, Any]) -> str:
    return repr(sorted(options.items(), key=lambda kv: kv[0]))


class _Kind:
    """The spares of one set of ray_options."""

    def __init__(self, options: dict[str, Any], timeout: float) -> None:
        self.options = options
        self.timeout = timeout  # how long the filler waits for Ray to place one
        self.ready: deque[RayWorker] = deque()
        self.target = 1
        self.held = 0  # warm_ray_actors blocks asking for more
        self.placing = False  # the filler is making one now
        self.waiting = False  # a take() is waiting for that one
        self.failed = False  # Ray could not place one: no retry until it is asked for again


class SpareActors:
    """Warm Ray actors for every system of the process (see the module's doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._kinds: dict[str, _Kind] = {}
        self._placing: set[Any] = set()  # handles the filler is placing now
        self._modules: dict[str, None] = {}  # what spares import before they are needed
        self._users = 0  # open systems and warm_ray_actors blocks: the spares live while > 0
        self._session: str | None = None
        self._filler: threading.Thread | None = None

    def open(self) -> None:
        import ray  # noqa: PLC0415

        context = ray.get_runtime_context()
        session = f"{context.get_node_id()}/{context.get_job_id()}"
        with self._lock:
            if session != self._session:  # a new Ray since: the old spares are gone
                self._kinds.clear()
                self._session = session
            self._users += 1
            if self._filler is None:
                self._filler = threading.Thread(
                    target=self._fill, name="hivekeeper-ray-spares", daemon=True
                )
                self._filler.start()

    def close(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users:
                return
            self._changed.notify_all()
            filler, self._filler = self._filler, None
            placing = list(self._placing)
        for handle in placing:  # a placement under way ends now, not when Ray is done
            kill_actor(handle)
        if filler is not None:
            filler.join(10.0)
        self.kill_all()

    def kill_all(self) -> None:
        with self._lock:
            workers = [w for kind in self._kinds.values() for w in kind.ready]
            self._kinds.clear()
        for worker in workers:
            worker.kill()

    def hold(self, count: int, options: dict[str, Any], timeout: float) -> None:
        with self._lock:
            kind = self._kind(options, timeout)
            kind.held += 1
            kind.target = max(kind.target, count)
            self._changed.notify_all()

    def unhold(self, options: dict[str, Any]) -> None:
        with self._lock:
            kind = self._kinds.get(options_key(options))
            if kind is not None:
                kind.held -= 1
                if kind.held == 0:
                    kind.target = 1

    def ready(self, options: dict[str, Any]) -> list[RayWorker]:
        """The warm actors ready now for these options (a copy)."""
        with self._lock:
            kind = self._kinds.get(options_key(options))
            return list(kind.ready) if kind is not None else []

    def take(self, module: str | None, options: dict[str, Any], timeout: float) -> RayWorker | None:
        """A warm actor for these options, or None (the caller places its own). Waits for the
        one being made only if no one else is waiting for it: it is nearer than a new one."""
        with self._lock:
            if module is not None and module != "__main__":
                self._modules.setdefault(module, None)
            kind = self._kind(options, timeout)
            kind.failed = False
            if not kind.ready and kind.placing and not kind.waiting:
                kind.waiting = True
                try:
                    self._changed.wait_for(
                        lambda: bool(kind.ready) or not kind.placing or not self._users, timeout
                    )
                finally:
                    kind.waiting = False
            worker = kind.ready.popleft() if kind.ready else None
            self._changed.notify_all()  # one fewer: the filler makes the next
        if worker is not None and not worker.alive():
            worker.kill()
            return None
        return worker

    def _kind(self, options: dict[str, Any], timeout: float) -> _Kind:
        key = options_key(options)
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._kinds[key] = _Kind(dict(options), timeout)
        return kind

    def _wanted(self) -> _Kind | None:
        for kind in self._kinds.values():
            if not kind.failed and len(kind.ready) < kind.target:
                return kind
        return None

    def _fill(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: not self._users or self._wanted() is not None)
                kind = self._wanted()
                if not self._users or kind is None:
                    return
                kind.placing = True
                modules = tuple(self._modules)
            worker = None
            try:
                worker = place(kind.options, kind.timeout, self._track)
                if modules:
                    import cloudpickle  # noqa: PLC0415

                    worker.conn.send_bytes(cloudpickle.dumps(("import", modules)))
                    worker.conn.flush()
            except StoppingError:
                pass
            except Exception as exc:  # noqa: BLE001 - logged; asked for again, it is retried
                kind.failed = True
                _log.warning("ray_spare_failed", reason=str(exc)[:300], options=kind.options)
            with self._lock:
                kind.placing = False
                if (
                    worker is not None
                    and self._users
                    and self._kinds.get(options_key(kind.options)) is kind
                ):
                    kind.ready.append(worker)
                    worker = None
                self._changed.notify_all()
            if worker is not None:
                worker.kill()

    def _track(self, handle: Any, placing: bool) -> None:
        with self._lock:
            if not placing:
                self._placing.discard(handle)
                return
            self._placing.add(handle)
            stopping = not self._users
        if stopping:  # closed between the filler's choice and Ray's handle: no spare now
            kill_actor(handle)


SPARES = SpareActors()


@contextlib.contextmanager
def warm_ray_actors(
    count: int = 1,
    ray_options: dict[str, Any] | None = None,
    *,
    ray_address: str | None = None,
    timeout: float = 60.0,
) -> Iterator[None]:
    """Keep `count` warm Ray actors (for agents with these `ray_options`) ready while inside,
    across the systems started and stopped meanwhile: each agent start or replacement that
    finds one skips Ray's cold actor start (seconds on a loaded machine)."""
    if count < 1:
        msg = f"count must be at least 1, got {count!r}"
        raise ValueError(msg)
    options = dict(ray_options or {})
    owns = acquire_ray(ray_address)
    try:
        SPARES.open()
        try:
            SPARES.hold(count, options, timeout)
            try:
                yield
            finally:
                SPARES.unhold(options)
        finally:
            SPARES.close()
    finally:
        if owns:
            release_ray()
