"""Agent: the user's behaviour (handle, hooks, state), apart from the actor that hosts it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from ._context import AgentContext

__all__ = ["Agent", "ContextNotAttachedError"]


class ContextNotAttachedError(RuntimeError):
    """self.context was used before the host attached it (for example in __init__)."""


class Agent:
    """Subclass and implement handle(message). A fresh instance is made on every (re)start.

    Optional:
      input_model: a pydantic model; messages are validated into it before handle() sees them
        (a message that does not validate is answered INVALID_INPUT and does not crash the agent).
      on_start() / on_stop(): hooks run on the agent's own thread.
      handle may be `async def`.
    handle() may return plain data (SUCCESS) or an ExecutionResult to report another status;
    an exception crashes this instance (let it crash) and its supervisor decides what follows.
    """

    input_model: ClassVar[type[BaseModel] | None] = None
    _context: AgentContext | None = None

    @property
    def context(self) -> AgentContext:
        if self._context is None:
            msg = (
                f"{type(self).__name__}.context is attached by the host after __init__; "
                "use it in on_start() or handle()"
            )
            raise ContextNotAttachedError(msg)
        return self._context

    def attach_context(self, context: AgentContext) -> None:
        """Called by the host before on_start(); not for user code."""
        self._context = context

    def on_start(self) -> None:
        """Runs before the first message, on the agent's thread."""

    def on_stop(self) -> None:
        """Runs after the last message when the agent is stopped in order."""

    def handle(self, message: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement handle(message)")
