"""The parent's end of one Ray agent's actor: the link its messages cross (_RayLink), the
worker as the runner sees it (RayWorker), and placing a new actor (place)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from ._ray_actor import remote_class
from ._worker_pool import process_rss_mb

__all__ = ["RayWorker", "StoppingError", "kill_actor", "place"]

_KILL_GRACE_S = 1.0  # a wait on a killed actor ends within this, whatever Ray says
_POLL_S = 0.5  # how often a wait looks whether its actor was killed meanwhile


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
                data: bytes = ray.get(ref, timeout=_POLL_S)
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

        if self.conn.killed_at is None:
            self.conn.killed_at = time.monotonic()
        kill_actor(self.handle)

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


class StoppingError(RuntimeError):
    """No new Ray actors: the system (or the process's Ray) is stopping."""

    def __init__(self) -> None:
        super().__init__("the system is stopping: no new Ray actors")


def place(options: dict[str, Any], timeout: float, track: Callable[[Any, bool], None]) -> RayWorker:
    """A new actor with these `.options()`, placed and answering. `track(handle, True)` is
    called as soon as Ray has a handle (so a closing owner can kill a placement under way),
    `track(handle, False)` once this is done with it either way."""
    import ray  # noqa: PLC0415

    handle = remote_class().options(**options).remote()
    track(handle, True)
    try:
        try:
            pid, node_id, actor_id = ray.get(handle.info.remote(), timeout=timeout)
        except ray.exceptions.RayActorError as exc:  # killed by its closing owner while placed
            raise StoppingError from exc
        except ray.exceptions.GetTimeoutError as exc:
            kill_actor(handle)
            msg = f"Ray could not place the actor within {timeout:.1f}s ({options=})"
            raise RuntimeError(msg) from exc
        local = node_id == ray.get_runtime_context().get_node_id()
        return RayWorker(handle, pid, node_id, actor_id, local=local)
    finally:
        track(handle, False)


def kill_actor(handle: Any) -> None:
    """`ray.kill` without Ray's restart; an actor already gone (or a Ray shut down) is fine."""
    import ray  # noqa: PLC0415

    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)
