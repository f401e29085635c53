"""ExecutionResult: the answer to every ask, as in the seed's production pattern."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ExecutionResult", "ExecutionStatus", "ResultError"]


class ExecutionStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    INVALID_INPUT = "invalid_input"
    INVALID_OUTPUT = "invalid_output"
    REJECTED = "rejected"


class ResultError(Exception):
    """Raised by ExecutionResult.unwrap() for any status but SUCCESS; carries the result."""

    def __init__(self, result: ExecutionResult) -> None:
        self.result = result
        where = f" (handled by {result.handled_by})" if result.handled_by else ""
        super().__init__(f"{result.status.value}{where}: {result.error or 'no detail'}")


class ExecutionResult(BaseModel):
    """status: what happened; data: the answer (also set when a fallback answered);
    error: a readable reason for any status but SUCCESS; fallback_used: a fallback answered;
    handled_by: path of the actor that answered; attempts: deliveries to the primary;
    trace_id: the request's trace id."""

    model_config = ConfigDict(frozen=True)

    status: ExecutionStatus
    data: Any = None
    error: str | None = None
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
