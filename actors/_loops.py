"""Reasoning-loop detection within one message: the same tool call (name + arguments) or the
same tool-calling model output repeated.

A final answer (a response without tool calls) is never counted here: an invalid one is asked
again and, after `output_attempts` invalid answers, the message ends INVALID_OUTPUT, whether
the answers were identical or not. A loop is about repeated *steps*, not repeated answers.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .llm._types import LLMResponse, ToolCall

__all__ = ["LoopDetector"]


def _canonical(arguments: Any) -> str:
    """A stable text for arguments; never raises (nesting too deep, NaN, a cycle...)."""
    try:
        value = arguments
        if isinstance(arguments, str):
            try:
                value = json.loads(arguments)
            except json.JSONDecodeError:
                return arguments
        return json.dumps(value, sort_keys=True, default=str)
    except (RecursionError, ValueError, TypeError):
        return f"<unprintable arguments {id(arguments):x}>"


class LoopDetector:
    """threshold: how many identical occurrences within one message make a loop."""

    def __init__(self, threshold: int = 3) -> None:
        self.threshold = threshold
        self._seen: Counter[str] = Counter()

    def tool_call(self, call: ToolCall) -> str | None:
        key = f"tool:{call.name}:{_canonical(call.arguments)}"
        self._seen[key] += 1
        if self._seen[key] >= self.threshold:
            shown = f"{call.name}({_canonical(call.arguments)[:200]})"
            return f"reasoning loop: tool call {shown} repeated {self._seen[key]} times"
        return None

    def output(self, response: LLMResponse) -> str | None:
        """A loop when the same tool-calling output comes `threshold` times (this also catches
        the same refused call proposed again and again); final answers are never counted."""
        if not response.tool_calls:
            return None
        calls = [(c.name, _canonical(c.arguments)) for c in response.tool_calls]
        key = f"out:{response.content!r}:{calls!r}"
        self._seen[key] += 1
        if self._seen[key] >= self.threshold:
            return f"reasoning loop: the model gave the same output {self._seen[key]} times"
        return None
