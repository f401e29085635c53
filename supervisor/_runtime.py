"""Runtime services shared by every slot, host and supervisor actor of one system."""

from __future__ import annotations

import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._clock import Clock
from ._dead_letters import DeadLetterOffice
from ._otel import Tracing
from ._rate_limiter import Limiters
from ._scheduler import Scheduler

if TYPE_CHECKING:
    from actors import ExecutionResult

    from ._envelope import Envelope
    from ._worker_pool import WorkerPool

__all__ = ["Runtime"]


@dataclass(eq=False)
class Runtime:
    """clock/scheduler: time and timers; dead_letters: the system's dead-letter office;
    default_timeout: ask deadline when the caller gives none; ask/tell: the system's, used by
    agent contexts (the asking handler's envelope and path, target path, message, timeout)."""

    clock: Clock
    scheduler: Scheduler
    dead_letters: DeadLetterOffice
    default_timeout: float
    ask: Callable[[Envelope | None, str, str, Any, float | None, str | None], ExecutionResult]
    tell: Callable[[Envelope | None, str, str, Any, str | None], None]
    ask_async: Callable[
        [Envelope | None, str, str, Any, float | None, str | None], Awaitable[ExecutionResult]
    ]
    # the system's start_child(supervisor_path, spec, *, timeout=30.0) -> path and
    # stop_child(path, *, timeout=30.0), for agent contexts (safe from a handler's thread)
    start_child: Callable[..., str]
    stop_child: Callable[..., None]
    rng: random.Random = field(default_factory=random.Random)
    tracing: Tracing | None = None
    name: str = "hivekeeper"  # the root's id, to name worker processes
    limiters: Limiters = field(init=False)  # the rate limiters of this system's slots

    workers: WorkerPool | None = field(init=False, default=None)  # made by the first process agent
    _workers_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.limiters = Limiters(self.clock)

    def worker_pool(self) -> WorkerPool:
        """This system's worker processes (process-isolated agents), started on first use."""
        with self._workers_lock:
            if self.workers is None:
                from ._worker_pool import WorkerPool  # noqa: PLC0415 - only with process agents

                self.workers = WorkerPool(self.name)
            return self.workers

    def close_workers(self) -> None:
        with self._workers_lock:
            pool, self.workers = self.workers, None
        if pool is not None:
            pool.close()
