"""configure_logging(): structlog set up for hivekeeper, JSON in production, readable console
output in development. Every event carries path, agent_id and trace_id (and message_id for
messages): lifecycle events name them explicitly; events logged by user code inside a handler
get them from the message context the host sets. Secrets are masked by a processor.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from actors._current import current_message
from actors._redaction import add_sensitive_fields, redact

__all__ = ["add_message_context", "configure_logging", "redact_event"]


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


def configure_logging(
    *,
    json: bool | None = None,
    level: str | int = "info",
    stream: TextIO | None = None,
    redact_fields: Iterable[str] = (),
) -> None:
    """Configure structlog process-wide.

    json: JSON lines (production) or a readable console renderer (development); None picks
      JSON when the stream is not a terminal. level: the minimum level logged.
    redact_fields: extra field names whose values are always masked.
    """
    out = stream or sys.stderr
    use_json = (not out.isatty()) if json is None else json
    add_sensitive_fields(redact_fields)
    numeric = level if isinstance(level, int) else logging.getLevelNamesMapping()[level.upper()]
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_message_context,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
