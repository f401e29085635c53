"""Reasoning-loop detection: the same tool call (name + arguments) or the same model output
repeated within one message."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .llm._types import LLMResponse, ToolCall

__all__ = ["LoopDetector"]


def _canonical(arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return str(arguments)
    return json.dumps(arguments, sort_keys=True, default=str)


class LoopDetector:
    """threshold: how many identical occurrences within one message make a loop."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self._seen: Counter[str] = Counter()

    def tool_call(self, call: ToolCall) -> str | None:
        key = f"tool:{call.name}:{_canonical(call.arguments)}"
        self._seen[key] += 1
        if self._seen[key] >= self.threshold:
            shown = f"{call.name}({_canonical(call.arguments)})"
            return f"reasoning loop: tool call {shown} repeated {self._seen[key]} times"
        return None

    def output(self, response: LLMResponse) -> str | None:
        calls = [(c.name, _canonical(c.arguments)) for c in response.tool_calls]
        key = f"out:{response.content!r}:{calls!r}"
        self._seen[key] += 1
        if self._seen[key] >= self.threshold:
            return f"reasoning loop: the model gave the same output {self._seen[key]} times"
        return None
