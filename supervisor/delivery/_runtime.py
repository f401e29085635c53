"""Runtime services shared by every slot, host and supervisor actor of one system."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .._clock import Clock
from .._otel import Tracing
from .._scheduler import Scheduler
from ..store import Store
from ._dead_letters import DeadLetterOffice
from ._durable import AgentDurability
from ._rate_limiter import Limiters

if TYPE_CHECKING:
    from actors import ExecutionResult

    from .._spec import ChildSpec
    from ._envelope import Envelope

__all__ = ["Runtime"]

_S = TypeVar("_S")


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
    # their awaited twins, for task agents' contexts (no thread taken while waiting)
    start_child_async: Callable[..., Awaitable[str]]
    stop_child_async: Callable[..., Awaitable[None]]
    rng: random.Random = field(default_factory=random.Random)
    tracing: Tracing | None = None
    name: str = "hivekeeper"  # the root's id, to name worker processes
    ray_address: str | None = None  # the Ray cluster Ray agents join (None: a local Ray)
    store: Store | None = None  # where durable mailboxes and persisted state are kept
    limiters: Limiters = field(init=False)  # the rate limiters of this system's slots

    # what a kind of host needs once per system (the worker processes of process agents),
    # made on first use by that host kind and closed when the system stops
    services: dict[str, Any] = field(init=False, default_factory=dict)
    _services_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.limiters = Limiters(self.clock)

    def durability_for(self, path: str, spec: ChildSpec) -> AgentDurability | None:
        """The durability of the agent at `path`, if its spec asks for any."""
        if not (spec.durable or spec.persist):
            return None
        if self.store is None:
            msg = (
                f"{path} has durable={spec.durable}, persist={spec.persist}: it needs a "
                "store, start(tree, store='sqlite:///path/to/state.db')"
            )
            raise ValueError(msg)
        return AgentDurability(self.store, path, durable=spec.durable, persist=spec.persist)

    def service(self, key: str, make: Callable[[], _S]) -> _S:
        """This system's `key` service, made by `make()` on first use."""
        with self._services_lock:
            found = self.services.get(key)
            if found is None:
                found = self.services[key] = make()
            made: _S = found
            return made

    def close_services(self) -> None:
        """Close every service (e.g. end every worker process); never raises."""
        with self._services_lock:
            services = list(self.services.values())
            self.services.clear()
        for service in services:
            with contextlib.suppress(Exception):
                service.close()
