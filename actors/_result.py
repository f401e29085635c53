"""ExecutionResult: the answer to every ask, as in the seed's production pattern."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ExecutionResult", "ExecutionStatus", "FailureReason", "ResultError"]


class ExecutionStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    REJECTED = "rejected"


class FailureReason(StrEnum):
    """Why a result is not SUCCESS, finer than its status (None on SUCCESS)."""

    CRASH = "crash"  # an exception escaped handle()
    DEADLINE = "deadline"  # the handler overran message_timeout
    ASK_TIMEOUT = "ask_timeout"  # the caller's deadline passed first
    ASK_CYCLE = "ask_cycle"  # an ask that would wait on itself
    BREAKER_OPEN = "breaker_open"
    MAILBOX_FULL = "mailbox_full"
    RATE_LIMITED = "rate_limited"  # over its rate limit, and the deadline cannot wait for it
    ABANDONED_LIMIT = "abandoned_limit"  # down: too many of its hung handlers still running
    MEMORY = "memory"  # its worker process went over memory_limit_mb
    UNAVAILABLE = "unavailable"  # stopped, removed, restarting with backoff, tree failed
    DUPLICATE = "duplicate"  # a durable agent's store has this idempotency key already
    STORE_ERROR = "store_error"  # a durable agent's store could not keep the message
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    TOOL_REFUSED = "tool_refused"  # the model kept proposing tool calls the guard refused
    TOOL_FAILED = "tool_failed"  # an approved tool raised
    REASONING_LOOP = "reasoning_loop"  # repeated identical tool calls or model outputs
    STEP_LIMIT = "step_limit"
    BUDGET_TOKENS = "budget_tokens"
    BUDGET_COST = "budget_cost"
    BUDGET_STEPS = "budget_steps"
    LLM_ERROR = "llm_error"
    LLM_TIMEOUT = "llm_timeout"


class ResultError(Exception):
    """Raised by ExecutionResult.unwrap() for any status but SUCCESS; carries the result."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result
        where = f" (handled by {result.handled_by})" if result.handled_by else ""
        super().__init__(f"{result.status.value}{where}: {result.error or 'no detail'}")


class ExecutionResult(BaseModel):
    """status: what happened; data: the answer (also set when a fallback answered);
    error: a readable reason for any status but SUCCESS; reason: the typed cause of the first
    failure (also set when a fallback then answered); fallback_used: a fallback answered;
    handled_by: path of the actor that answered; attempts: deliveries to the primary;
    trace_id: the request's trace id."""

    model_config = ConfigDict(frozen=True)

    status: ExecutionStatus
    data: Any = None
    error: str | None = None
    reason: FailureReason | None = None
    fallback_used: bool = False
    handled_by: str | None = None
    attempts: int = 0
    trace_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is ExecutionStatus.SUCCESS

    def unwrap(self) -> Any:
        """The data of a SUCCESS result; any other status raises ResultError."""
        if self.status is ExecutionStatus.SUCCESS:
            return self.data
        raise ResultError(self)
