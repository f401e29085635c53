"""ScriptedLLM: deterministic replies for tests and examples, recording every call."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from ._types import LLMError, LLMMessage, LLMResponse, ToolCall, ToolSchema, Usage

__all__ = ["Reply", "ReplyFunction", "ScriptedLLM", "estimate_tokens"]

Reply: TypeAlias = str | Mapping[str, Any] | LLMResponse | Exception
"""One scripted reply. A `str` is the content; a mapping may hold `content`, `tool_calls`
(each a `ToolCall` or a mapping with `name`, `arguments` and optionally `id`), `usage` (a
`Usage` or a mapping of its fields), `finish_reason` and `model`; an `LLMResponse` is returned
as it is; an `Exception` instance is raised."""

ReplyFunction: TypeAlias = Callable[[Sequence[LLMMessage], Sequence[ToolSchema]], Reply]
"""Computes the reply from the call: `(messages, tools) -> Reply`."""

_REPLY_KEYS = frozenset({"content", "tool_calls", "usage", "finish_reason", "model"})


def estimate_tokens(text: str) -> int:
    """About one token per four characters, rounded up (so any non-empty text costs >= 1)."""
    return (len(text) + 3) // 4


def _message_text(message: LLMMessage) -> str:
    parts = [message.content or ""]
    for call in message.tool_calls:
        try:
            args = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        except (RecursionError, TypeError, ValueError):  # too deep, or not JSON: not estimated
            args = ""
        parts.append(call.name + args)
    return "".join(parts)


class ScriptedLLM:
    """An `LLMClient` and `AsyncLLMClient` that answers from a script.

    `replies` is either a list of `Reply` (one per call, in order) or a `ReplyFunction`. When a
    list runs out, the last reply is repeated if `repeat_last` (the default), else the call
    raises `LLMError`. Usage is whatever the reply states; otherwise tokens are estimated with
    `estimate_tokens` (prompt: every message's text; completion: the reply's content and tool
    calls) and `cost_usd = total_tokens / 1000 * cost_per_1k_tokens`. Tool calls without an id
    get `call_<call number>_<index>`.

    Every call is recorded in `.calls` as `(messages, tools)` tuples, in the order the calls
    arrived, before the reply is computed (so calls that raise are recorded too). Safe to share
    between threads: the list position and the record are updated under one lock. A
    `ReplyFunction` runs outside the lock and may be called concurrently.
    """

    def __init__(
        self,
        replies: Iterable[Reply] | ReplyFunction,
        *,
        repeat_last: bool = True,
        cost_per_1k_tokens: float = 0.0,
        model: str = "scripted",
    ) -> None:
        if cost_per_1k_tokens < 0:
            raise ValueError("cost_per_1k_tokens must be >= 0")
        self._function: ReplyFunction | None = None
        self._replies: list[Reply] = []
        if callable(replies):
            self._function = replies
        else:
            self._replies = list(replies)
            for reply in self._replies:
                _check_reply(reply)
        self.repeat_last = repeat_last
        self.cost_per_1k_tokens = cost_per_1k_tokens
        self.model = model
        self.calls: list[tuple[tuple[LLMMessage, ...], tuple[ToolSchema, ...]]] = []
        self._lock = threading.Lock()

    # a client given in a ChildSpec's kwargs crosses to a worker process (isolation="process")
    # pickled: the lock is made anew there
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        source = "function" if self._function is not None else f"{len(self._replies)} replies"
        return f"ScriptedLLM({source}, calls={len(self.calls)})"

    @property
    def call_count(self) -> int:
        with self._lock:
            return len(self.calls)

    @property
    def remaining(self) -> int | None:
        """Replies not yet used from a list script (None for a function script)."""
        if self._function is not None:
            return None
        with self._lock:
            return max(0, len(self._replies) - len(self.calls))

    def complete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        """The next scripted reply. `timeout` is accepted and ignored (replies are instant)."""
        messages, tools = tuple(messages), tuple(tools)
        function = self._function
        with self._lock:
            number = len(self.calls)
            self.calls.append((messages, tools))
            if function is None:
                reply = self._next_reply(number)
        if function is not None:
            reply = function(messages, tools)
            _check_reply(reply)
        return self._respond(reply, number, messages)

    async def acomplete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        """Like `complete`, after yielding to the event loop once."""
        await asyncio.sleep(0)
        return self.complete(messages, tools, timeout=timeout)

    def _next_reply(self, number: int) -> Reply:
        if number < len(self._replies):
            return self._replies[number]
        if self.repeat_last and self._replies:
            return self._replies[-1]
        return LLMError(
            f"ScriptedLLM ran out of replies: call {number + 1}, script of {len(self._replies)}"
        )

    def _respond(self, reply: Reply, number: int, messages: Sequence[LLMMessage]) -> LLMResponse:
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, LLMResponse):
            return reply
        spec: Mapping[str, Any] = {"content": reply} if isinstance(reply, str) else reply
        content = spec.get("content")
        tool_calls = tuple(
            _tool_call(raw, f"call_{number + 1}_{index}")
            for index, raw in enumerate(spec.get("tool_calls") or ())
        )
        usage = self._usage(spec.get("usage"), messages, content, tool_calls)
        finish = spec.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
        return LLMResponse(
            content=content,
            tool_calls=tool_calls,
            usage=usage,
            model=spec.get("model", self.model),
            finish_reason=finish,
        )

    def _usage(
        self,
        given: Usage | Mapping[str, Any] | None,
        messages: Sequence[LLMMessage],
        content: str | None,
        tool_calls: tuple[ToolCall, ...],
    ) -> Usage:
        if isinstance(given, Usage):
            return given
        if given is not None:
            fields = dict(given)
        else:
            reply_text = _message_text(
                LLMMessage(role="assistant", content=content, tool_calls=tool_calls)
            )
            fields = {
                "prompt_tokens": sum(estimate_tokens(_message_text(m)) for m in messages),
                "completion_tokens": estimate_tokens(reply_text),
            }
        if "cost_usd" not in fields:
            total = int(fields.get("prompt_tokens", 0)) + int(fields.get("completion_tokens", 0))
            fields["cost_usd"] = total / 1000 * self.cost_per_1k_tokens
        return Usage.model_validate(fields)


def _check_reply(reply: object) -> None:
    """Reject replies that could never be turned into a response, when the script is built."""
    if isinstance(reply, str | LLMResponse | Exception):
        return
    if not isinstance(reply, Mapping):
        raise TypeError(f"unsupported scripted reply type: {type(reply).__name__}")
    unknown = set(reply) - _REPLY_KEYS
    if unknown:
        raise ValueError(f"unknown keys in scripted reply: {sorted(unknown)}")
    content = reply.get("content")
    if content is not None and not isinstance(content, str):
        raise TypeError("scripted reply content must be a str or None")
    for raw in reply.get("tool_calls") or ():
        _tool_call(raw, "check")
    usage = reply.get("usage")
    if usage is not None and not isinstance(usage, Usage):
        Usage.model_validate(usage)  # a negative or non-finite figure fails here, up front


def _tool_call(raw: ToolCall | Mapping[str, Any], default_id: str) -> ToolCall:
    if isinstance(raw, ToolCall):
        return raw
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ValueError(f"a scripted tool call needs a name: {raw!r}")
    return ToolCall(
        id=str(raw.get("id") or default_id),
        name=str(raw["name"]),
        arguments=raw.get("arguments", {}),
    )
