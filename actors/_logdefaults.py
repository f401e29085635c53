"""hivekeeper's own logging defaults, for when nobody configured structlog.

A library must not print to stdout or chat at debug level: until the application calls
structlog.configure() (or supervisor.configure_logging()), hivekeeper's events go to stderr, at
info and above, redacted, rendered key=value. structlog's global configuration is never
touched here, so an application's own structlog loggers keep structlog's defaults and an
application that configures structlog itself gets every event through its own chain.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

from ._current import current_message
from ._redaction import redact

__all__ = [
    "DEFAULT_LEVEL",
    "add_message_context",
    "default_logger",
    "processor_chain",
    "redact_event",
]

DEFAULT_LEVEL = logging.INFO


def add_message_context(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Fill path / agent_id / trace_id / message_id from the message being handled, if any."""
    ctx = current_message.get()
    if ctx is not None:
        event.setdefault("path", ctx.path)
        event.setdefault("agent_id", ctx.agent_id)
        event.setdefault("trace_id", ctx.trace_id)
        event.setdefault("message_id", ctx.message_id)
    return event


def redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask secrets in every value, including nested payloads and rendered exceptions."""
    cleaned: MutableMapping[str, Any] = redact(dict(event))
    return cleaned


class _StderrLogger:
    """Writes each rendered line to whatever sys.stderr is at the time (so that a test's
    capture, or a redirected stderr, gets it)."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        stream = sys.stderr
        with self._lock:
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


def processor_chain(renderer: Any) -> list[Any]:
    """The processors every hivekeeper log line goes through, ending in `renderer`."""
    return [
        structlog.contextvars.merge_contextvars,
        add_message_context,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_event,
        renderer,
    ]


_default: Any = None


def default_logger() -> Any:
    """The bound logger hivekeeper uses while structlog is not configured."""
    global _default  # noqa: PLW0603 - built once, on first use
    if _default is None:
        _default = structlog.wrap_logger(
            _StderrLogger(),
            processors=processor_chain(structlog.dev.ConsoleRenderer(colors=False)),
            wrapper_class=structlog.make_filtering_bound_logger(DEFAULT_LEVEL),
        )
    return _default
