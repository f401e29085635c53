"""Explicit agent states (the seed's Layer 2): every state named up front, every transition an
event. No undefined state."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from ._events import emit

if TYPE_CHECKING:
    from ._context import AgentContext

__all__ = ["AgentState", "StateTracker"]


class AgentState(StrEnum):
    INITIALIZING = "initializing"  # built, not yet given a message
    PROCESSING = "processing"  # asking the model
    AWAITING_TOOL = "awaiting_tool"  # running an approved tool call
    VALIDATING = "validating"  # checking the model's final answer
    RETRYING = "retrying"  # the answer was invalid; asking again with the errors
    FAILED = "failed"  # the message ended in a failure (loop, budget, refused tools, ...)
    COMPLETED = "completed"  # the message ended with a valid answer
    TIMEOUT = "timeout"  # the model call or the handler ran out of time


# Which transitions are legal. A message starts from any resting state.
_RESTING = frozenset(
    {AgentState.INITIALIZING, AgentState.COMPLETED, AgentState.FAILED, AgentState.TIMEOUT}
)
_ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    AgentState.PROCESSING: frozenset(
        {*_RESTING, AgentState.PROCESSING, AgentState.AWAITING_TOOL, AgentState.RETRYING}
    ),
    AgentState.AWAITING_TOOL: frozenset({AgentState.PROCESSING, AgentState.AWAITING_TOOL}),
    AgentState.VALIDATING: frozenset({AgentState.PROCESSING}),
    AgentState.RETRYING: frozenset({AgentState.VALIDATING}),
    AgentState.COMPLETED: frozenset({AgentState.VALIDATING}),
    AgentState.FAILED: frozenset(
        {
            AgentState.PROCESSING,
            AgentState.AWAITING_TOOL,
            AgentState.VALIDATING,
            AgentState.RETRYING,
        }
    ),
    AgentState.TIMEOUT: frozenset(
        {
            AgentState.PROCESSING,
            AgentState.AWAITING_TOOL,
            AgentState.VALIDATING,
            AgentState.RETRYING,
        }
    ),
}


class StateTracker:
    """Holds an agent's current state; each change is checked against the transition table
    and emitted as an `agent_state_changed` event (debug level: cheap when filtered)."""

    def __init__(self, context: AgentContext | None = None) -> None:
        self.state = AgentState.INITIALIZING
        self.context = context
        self.history: list[AgentState] = []

    def to(self, new: AgentState, reason: str | None = None) -> None:
        old = self.state
        if old not in _ALLOWED[new]:
            msg = f"illegal agent state transition {old.value} -> {new.value}"
            raise RuntimeError(msg)
        self.state = new
        self.history.append(new)
        if len(self.history) > 256:
            del self.history[:128]
        ctx = self.context
        emit(
            "agent_state_changed",
            level="debug",
            path=ctx.path if ctx is not None else None,
            agent_id=ctx.agent_id if ctx is not None else None,
            trace_id=ctx.trace_id if ctx is not None else None,
            old=old.value,
            new=new.value,
            reason=reason,
        )
