"""The OpenAI chat-completions wire format: the request body, and a distrustful reading of the
answer (a body from the network is never trusted: anything that is not a sound chat completion
raises `MalformedCompletion`, whatever is wrong with it), and the server's `Retry-After`."""

from __future__ import annotations

import email.utils
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._jsonsafe import NotJSONError, TooDeepError, problem, strict_loads
from ._types import LLMMessage, ToolCall, ToolSchema

__all__ = [
    "MAX_TOKENS",
    "Completion",
    "MalformedCompletion",
    "encode_payload",
    "parse_completion",
    "parse_retry_after",
    "payload",
]

MAX_TOKENS = 2**53
"""Usage figures above this are implausible (and beyond exact float arithmetic)."""


class MalformedCompletion(ValueError):
    """The body is not a usable chat completion; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Completion:
    content: str | None
    tool_calls: tuple[ToolCall, ...]
    prompt_tokens: int
    completion_tokens: int
    model: str | None
    finish_reason: str | None


# -- the request ---------------------------------------------------------------------------


def payload(
    model: str,
    extra_body: Mapping[str, Any],
    messages: Sequence[LLMMessage],
    tools: Sequence[ToolSchema],
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, **extra_body}
    body["messages"] = [_wire_message(m) for m in messages]
    if tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in tools
        ]
    return body


def encode_payload(body: dict[str, Any]) -> bytes:
    """The request body as UTF-8 JSON. Raises ValueError for what cannot be sent (NaN or
    Infinity, a lone surrogate, nesting too deep, a non-JSON value)."""
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except RecursionError:
        raise ValueError("the request is nested too deeply") from None
    except (TypeError, UnicodeEncodeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def _wire_message(message: LLMMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        wire["content"] = message.content or ""
        wire["tool_call_id"] = message.tool_call_id
    elif message.name is not None:  # OpenAI's tool messages take no name
        wire["name"] = message.name
    if message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments),
                },
            }
            for call in message.tool_calls
        ]
    return wire


# -- the answer ----------------------------------------------------------------------------


def parse_completion(raw: bytes) -> Completion:
    """The parts of a chat-completion body that we use, checked. Raises MalformedCompletion."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise MalformedCompletion("the body is nested too deeply") from None
    except ValueError as exc:
        raise MalformedCompletion(f"not JSON: {exc}") from None
    try:
        choice = body["choices"][0]
        message = choice["message"]
        if not isinstance(message, dict):
            raise MalformedCompletion("message is not an object")
        content = _text(message.get("content"), "content")
        calls = tuple(
            _tool_call(raw_call, index)
            for index, raw_call in enumerate(message.get("tool_calls") or ())
        )
        usage = body.get("usage") or {}
        if not isinstance(usage, dict):
            raise MalformedCompletion("usage is not an object")
        prompt = _tokens(usage, "prompt_tokens")
        completion = _tokens(usage, "completion_tokens")
        model = body.get("model")
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedCompletion(f"{type(exc).__name__}: {exc}") from None
    return Completion(
        content=content,
        tool_calls=calls,
        prompt_tokens=prompt,
        completion_tokens=completion,
        model=_text(model, "model") if isinstance(model, str) else None,
        finish_reason=_text(finish, "finish_reason") if isinstance(finish, str) else None,
    )


def _text(value: Any, what: str) -> str | None:
    """A string the answer holds (None stays None): it must be valid Unicode, since it may be
    sent back to the endpoint or logged."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedCompletion(f"{what} is not a string")
    if problem(value) is not None:
        raise MalformedCompletion(f"{what} is not valid Unicode (lone surrogate)")
    return value


def _tokens(usage: dict[str, Any], key: str) -> int:
    """A usage figure: absent/null is 0; else a non-negative whole number, not absurdly big.
    A wrong figure is a malformed answer: negative or non-finite ones would disable budgets."""
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value)[:40] if not isinstance(value, float) else str(value)
        raise MalformedCompletion(f"usage.{key} is not a whole number: {shown}")
    if value < 0:
        raise MalformedCompletion(f"usage.{key} is negative")
    if value > MAX_TOKENS:
        raise MalformedCompletion(f"usage.{key} is implausibly large")
    return value


def _tool_call(raw: Any, index: int) -> ToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("function"), dict):
        raise MalformedCompletion(f"tool call {index} has no function object")
    function = raw["function"]
    name = _text(function.get("name"), "tool call name")
    if name is None:
        raise MalformedCompletion(f"tool call {index} has no name")
    call_id = raw.get("id")
    if isinstance(call_id, int) and not isinstance(call_id, bool):
        call_id = str(call_id)
    call_id = _text(call_id or None, "tool call id") or f"call_{index}"
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):
        _text(arguments, "tool call arguments")
        try:
            parsed = strict_loads(arguments)
        except TooDeepError:
            raise MalformedCompletion("tool call arguments are nested too deeply") from None
        except NotJSONError:
            parsed = None  # NaN/Infinity: kept as sent, for the tool guard to refuse
        except ValueError:
            parsed = None  # invalid JSON: kept as sent, for the tool guard to refuse
        if isinstance(parsed, dict):
            arguments = parsed
    found = problem(arguments, finite=False)
    if found is not None:
        raise MalformedCompletion(f"tool call arguments: {found}")
    if not isinstance(arguments, dict | str):
        arguments = json.dumps(arguments)  # not an object: for the tool guard to refuse
    return ToolCall(id=call_id, name=name, arguments=arguments)


# -- Retry-After ---------------------------------------------------------------------------


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms`, else `Retry-After` as seconds or
    as an HTTP-date (a past date means 0). None when absent or unreadable."""
    millis = _finite(headers.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _finite(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None
