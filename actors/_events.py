"""Events: structlog key-value events, plus in-process sinks for tests and health.

Every supervisor report carries the same keys: event, supervisor, child, path, agent_id,
reason (OTP's supervisor reports have supervisor, errorContext, reason, offender).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

import structlog

from ._logdefaults import DEFAULT_LEVEL, default_logger
from ._redaction import redact, redact_text

__all__ = ["EventSink", "ExcInfo", "add_sink", "dropped_events", "emit", "remove_sink"]

EventSink = Callable[[dict[str, Any]], None]
ExcInfo = (
    bool
    | BaseException
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)

_loggers: dict[str, Any] = {}
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
    a filtering logger's levels are fixed by its class.) Unconfigured: hivekeeper's default,
    info and above."""
    if not structlog.is_configured():
        return _LEVELS.get(level, 20) >= DEFAULT_LEVEL
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


def emit(
    event: str,
    *,
    level: str = "info",
    exc_info: ExcInfo = None,
    logger_name: str = "hivekeeper",
    **fields: Any,
) -> None:
    """Log one event and hand it to the registered sinks, secrets masked here, whatever the
    structlog configuration (the application's own included). Costs next to nothing when no
    sink listens and the logger filters the level out.

    exc_info: True (the exception being handled), an exception or a sys.exc_info() tuple:
      rendered here as a redacted `exception` field (never left to a processor chain that may
      not redact). logger_name: the structlog / stdlib logger name ("hivekeeper.http", ...).
    """
    if not _sinks and not _logged(level):
        return
    if exc_info:
        fields["exception"] = _render_exception(exc_info)
    fields = redact(fields)
    for sink in _sinks:
        try:
            sink({"event": event, "level": level, **fields})
        except Exception:  # noqa: BLE001 - a broken sink must not break the caller
            _dropped.add()
    if not _logged(level):
        return
    try:
        if structlog.is_configured():
            # an application's chain may merge contextvars without redacting them: if it
            # merges them, do it here, redacted (merge_contextvars keeps values present)
            merges = structlog.contextvars.merge_contextvars in structlog.get_config()["processors"]
            bound = structlog.contextvars.get_contextvars() if merges else None
            if bound:
                fields = {**redact(bound), **fields}
            logger = _loggers.get(logger_name)
            if logger is None:
                logger = _loggers.setdefault(logger_name, structlog.get_logger(logger_name))
        else:
            logger = default_logger()
        getattr(logger, level)(event, **fields)
    except Exception:  # noqa: BLE001 - nor may logging (a closed stream, a bad processor)
        _dropped.add()


def _render_exception(exc_info: ExcInfo) -> str:
    try:
        if exc_info is True:
            exc_info = sys.exc_info()
        if isinstance(exc_info, BaseException):
            lines = traceback.format_exception(exc_info)
        elif isinstance(exc_info, tuple) and exc_info[1] is not None:
            lines = traceback.format_exception(exc_info[1])
        else:
            return "NoneType: None"
        return redact_text("".join(lines).rstrip())
    except Exception:  # noqa: BLE001 - a hostile exception: say so, never raise
        return "<unrenderable exception>"


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
