"""Lifecycle events (the bus itself lives in actors._events, so agents can emit too)."""

from __future__ import annotations

from collections.abc import Callable

from actors._events import EventSink, add_sink, emit, remove_sink

__all__ = ["EventSink", "add_sink", "emit", "remove_sink", "subscribe"]


def subscribe(sink: EventSink) -> Callable[[], None]:
    """Call sink(event_dict) for every hivekeeper event, from whatever thread emits it (keep
    it quick and non-blocking). Returns the function that unsubscribes."""
    add_sink(sink)
    return lambda: remove_sink(sink)
