"""The small protocol every LLM client speaks, and the data that crosses it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AsyncLLMClient",
    "LLMClient",
    "LLMError",
    "LLMMessage",
    "LLMRateLimitError",
    "LLMResponse",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "ToolCall",
    "ToolSchema",
    "Usage",
]


class ToolCall(BaseModel):
    """A tool call as the model proposed it. `arguments` is what the model sent: a dict when it
    parsed, else the raw string (possibly invalid JSON). Nothing here is trusted yet."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class LLMMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class ToolSchema(BaseModel):
    """What the model is told about a tool (OpenAI's function-tool shape)."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Usage(BaseModel):
    """What a call consumed, as the client reports it: whole non-negative token counts and a
    finite non-negative cost (a negative or NaN figure would silently disable budgets)."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0, allow_inf_nan=False)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class LLMResponse(BaseModel):
    model_config = ConfigDict(frozen=True)

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Field(default_factory=Usage)
    model: str | None = None
    finish_reason: str | None = None


class LLMError(Exception):
    """The LLM call failed (after the client's own retries)."""


class LLMTimeoutError(LLMError):
    """No answer within the client's timeout."""


class LLMRateLimitError(LLMError):
    """429 after every retry."""


class LLMServerError(LLMError):
    """5xx after every retry."""


class LLMResponseError(LLMError):
    """The endpoint answered with a body that is not a chat completion."""


@runtime_checkable
class LLMClient(Protocol):
    def complete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse: ...


@runtime_checkable
class AsyncLLMClient(Protocol):
    async def acomplete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse: ...
