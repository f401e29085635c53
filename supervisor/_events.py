"""Lifecycle events (the bus itself lives in actors._events, so agents can emit too).

Every hivekeeper module logs through emit(): it redacts the fields (and renders exc_info
itself, redacted) before any sink or structlog processor sees them, so events stay masked
under an application's own structlog configuration, e.g.
    emit("http_request", level="debug", logger_name="hivekeeper.http", method=..., status=...)
    emit("http_handler_failed", level="error", exc_info=True, logger_name="hivekeeper.http")
"""

from __future__ import annotations

from collections.abc import Callable

from actors._events import EventSink, ExcInfo, add_sink, emit, remove_sink

__all__ = ["EventSink", "ExcInfo", "add_sink", "emit", "remove_sink", "subscribe"]


def subscribe(sink: EventSink) -> Callable[[], None]:
    """Call sink(event_dict) for every hivekeeper event, from whatever thread emits it (keep
    it quick and non-blocking). Returns the function that unsubscribes."""
    add_sink(sink)
    return lambda: remove_sink(sink)
