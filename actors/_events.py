"""Events: structlog key-value events, plus in-process sinks for tests and health.

Every supervisor report carries the same keys: event, supervisor, child, path, agent_id,
reason (OTP's supervisor reports have supervisor, errorContext, reason, offender).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog

from ._redaction import redact

__all__ = ["EventSink", "add_sink", "dropped_events", "emit", "remove_sink"]

EventSink = Callable[[dict[str, Any]], None]

_logger = structlog.get_logger("hivekeeper")
_sinks: tuple[EventSink, ...] = ()
_sinks_lock = threading.Lock()


def add_sink(sink: EventSink) -> None:
    global _sinks  # noqa: PLW0603 - the one guarded place for process-wide sinks
    with _sinks_lock:
        _sinks = (*_sinks, sink)


def remove_sink(sink: EventSink) -> None:
    global _sinks  # noqa: PLW0603
    with _sinks_lock:
        _sinks = tuple(s for s in _sinks if s is not sink)


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_enabled: dict[tuple[type, str], bool] = {}


def _logged(level: str) -> bool:
    """Would the configured structlog wrapper log this level? (Cached per wrapper class:
    a filtering logger's levels are fixed by its class.)"""
    wrapper = structlog.get_config()["wrapper_class"]
    key = (wrapper, level)
    verdict = _enabled.get(key)
    if verdict is None:
        check = getattr(wrapper, "is_enabled_for", None)
        try:
            verdict = bool(check(None, _LEVELS.get(level, 20))) if check is not None else True
        except Exception:  # noqa: BLE001 - a wrapper we do not know: assume it logs
            verdict = True
        _enabled[key] = verdict
    return verdict


def emit(event: str, *, level: str = "info", **fields: Any) -> None:
    """Log one event (secrets masked) and hand it to the registered sinks. Costs next to
    nothing when no sink listens and the logger filters the level out."""
    if not _sinks and not _logged(level):
        return
    fields = redact(fields)
    for sink in _sinks:
        try:
            sink({"event": event, "level": level, **fields})
        except Exception:  # noqa: BLE001 - a broken sink must not break the caller
            _dropped.add()
    try:
        getattr(_logger, level)(event, **fields)
    except Exception:  # noqa: BLE001 - nor may logging (a closed stream, a bad processor)
        _dropped.add()


class _Dropped:
    """Events a sink or the logger failed on: counted, never raised into the runtime."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1


_dropped = _Dropped()


def dropped_events() -> int:
    """How many events a sink or the logger failed to take."""
    return _dropped.count
