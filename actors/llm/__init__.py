"""LLM clients: the protocol and its data, a scripted client for tests, a chaos wrapper that
injects production failures, and an OpenAI-compatible HTTP client."""

from ._chaos import FAULT_KINDS, ChaosLLM
from ._openai import OpenAICompatibleLLM, parse_retry_after
from ._scripted import Reply, ReplyFunction, ScriptedLLM, estimate_tokens
from ._types import (
    AsyncLLMClient,
    LLMClient,
    LLMError,
    LLMMessage,
    LLMRateLimitError,
    LLMResponse,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    ToolCall,
    ToolSchema,
    Usage,
)

__all__ = [
    "FAULT_KINDS",
    "AsyncLLMClient",
    "ChaosLLM",
    "LLMClient",
    "LLMError",
    "LLMMessage",
    "LLMRateLimitError",
    "LLMResponse",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "OpenAICompatibleLLM",
    "Reply",
    "ReplyFunction",
    "ScriptedLLM",
    "ToolCall",
    "ToolSchema",
    "Usage",
    "estimate_tokens",
    "parse_retry_after",
]
