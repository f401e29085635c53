"""The message being handled on this thread (or task): who handles it and its trace.

One ContextVar set per message by the host: a structlog processor merges it into every log
event, asks made from inside a handler inherit its trace id, and it follows an async handler
onto the shared event loop (asyncio copies the context into the task).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple

__all__ = ["MessageContext", "current_message"]


class MessageContext(NamedTuple):
    """chain: the paths waiting on this message, this handler's own path last (an ask to any
    of them from here could only end at its deadline)."""

    path: str
    agent_id: str
    trace_id: str
    message_id: int
    chain: tuple[str, ...] = ()


current_message: ContextVar[MessageContext | None] = ContextVar("hivekeeper_message", default=None)
