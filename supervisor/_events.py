"""Lifecycle events (the bus itself lives in actors._events, so agents can emit too)."""

from actors._events import EventSink, add_sink, emit, remove_sink

__all__ = ["EventSink", "add_sink", "emit", "remove_sink"]
