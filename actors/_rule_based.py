"""RuleBasedAgent: a deterministic agent (no LLM) for fallbacks: keyword rules, lookup tables,
"route to a human"."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from ._agent import Agent

__all__ = ["Rule", "RuleBasedAgent", "message_text"]


def message_text(message: Any) -> str:
    """Lower-cased text of a message, for keyword matching (strings inside dicts, lists and
    pydantic models included)."""
    if isinstance(message, str):
        return message.lower()
    if isinstance(message, BaseModel):
        return message_text(message.model_dump())
    if isinstance(message, Mapping):
        return " ".join(message_text(v) for v in message.values())
    if isinstance(message, (list, tuple, set, frozenset)):
        return " ".join(message_text(v) for v in message)
    return str(message).lower()


@dataclass(frozen=True)
class Rule:
    """Matches when any keyword occurs in the message text, or when `when(message)` is true.
    reply: the answer, or a callable message -> answer."""

    reply: Any
    keywords: Sequence[str] = ()
    when: Callable[[Any], bool] | None = None
    name: str = field(default="")

    def matches(self, message: Any, text: str) -> bool:
        if self.when is not None and self.when(message):
            return True
        return any(k.lower() in text for k in self.keywords)

    def answer(self, message: Any) -> Any:
        return self.reply(message) if callable(self.reply) else self.reply


class RuleBasedAgent(Agent):
    """Answers from `rules` (first match wins), else from `default` (a value, or a callable
    message -> value). Subclass and set the class attributes, or override handle()."""

    rules: ClassVar[Sequence[Rule]] = ()
    default: ClassVar[Any] = {"action": "route_to_human", "reason": "agent unavailable"}

    def handle(self, message: Any) -> Any:
        text = message_text(message)
        for rule in self.rules:
            if rule.matches(message, text):
                return rule.answer(message)
        default = type(self).default
        return default(message) if callable(default) else default
