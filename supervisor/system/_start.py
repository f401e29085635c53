"""start(): a tree, running."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Any

from .._clock import Clock
from .._spec import Supervisor
from ..store import Store
from ._options import seconds
from ._system import System

__all__ = ["start"]


def start(
    tree: Supervisor,
    *,
    clock: Clock | None = None,
    default_timeout: float = 30.0,
    start_timeout: float = 60.0,
    seed: int | None = None,
    tracing: bool | Any = False,
    ray_address: str | None = None,
    store: Store | str | None = None,
) -> System:
    """Start a tree: fallbacks first, then the root's children in declaration order, each
    started (on_start done) before the next. Returns the running System; raises
    TreeStartError if the root exhausts its restart budget while starting.

    clock: a FakeClock for tests. default_timeout: ask deadline when none is given.
    seed: seeds the jitter of backoffs. tracing: True (global OpenTelemetry tracer provider)
    or a TracerProvider: a span per message handled (needs the otel extra).
    ray_address: the Ray cluster agents with isolation="ray" join ("auto", "ray://host:10001",
    "host:6379"); None starts a local Ray when the first one starts (needs the ray extra).
    store: where agents with persist=True / durable=True keep their state and mailboxes:
    "sqlite:///path/to/state.db" (opened here, closed with the system) or a Store object
    (the caller's to close); ValueError if such agents are declared without one.
    default_timeout and start_timeout must be positive, finite numbers of seconds (else
    ValueError, or TypeError for a non-number), checked before anything starts."""
    start_timeout = seconds("start_timeout", start_timeout)
    with collector_paused():
        system = System(
            tree,
            clock=clock,
            default_timeout=default_timeout,
            seed=seed,
            tracing=tracing,
            ray_address=ray_address,
            store=store,
        )
        try:
            system._boot(start_timeout)
        except BaseException:  # Ctrl-C while starting: what started is stopped, in order
            system.shutdown(timeout=10.0)
            raise
    return system


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a tree is built and started, on again
    after (if it was on). Starting an agent makes about 18 objects that all live on, so the
    collector's passes over everything alive find nothing and cost a third of the start of
    100,000 agents; reference counting frees memory as usual meanwhile."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
