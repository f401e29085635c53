"""configure_logging(): structlog set up for hivekeeper, JSON in production, readable console
output in development. Every event carries path, agent_id and trace_id (and message_id for
messages): lifecycle events name them explicitly; events logged by user code inside a handler
get them from the message context the host sets. Secrets are masked by a processor (and
before that by emit() itself, so hivekeeper's events are masked under any structlog setup).

Without configure_logging() (and without the application configuring structlog itself),
hivekeeper's events go to stderr at info and above, redacted (see actors._logdefaults).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog

from actors._logdefaults import add_message_context, processor_chain, redact_event
from actors._redaction import add_sensitive_fields

__all__ = ["add_message_context", "configure_logging", "redact_event"]


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
    redact_fields: extra field names whose values are always masked: as keys, as header
      names, and as name=value / name: value / "name": "value" inside any text (exception
      messages included), in every event and in result.error.
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
        processors=processor_chain(renderer),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
