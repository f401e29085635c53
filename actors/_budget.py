"""Budgets: tokens, cost and steps, per message and per agent per time window."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from ._result import FailureReason

__all__ = ["Budget", "BudgetLedger", "MessageSpend"]


class Budget(BaseModel):
    """Limits (None: unlimited). Per message, and over a sliding window of window_seconds
    shared by every message of the agent (of the ledger: pass one ledger to several agents,
    or to successive instances of one path, to share a window across restarts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens_per_message: int | None = Field(default=None, ge=1)
    cost_per_message: float | None = Field(default=None, gt=0)
    steps_per_message: int | None = Field(default=None, ge=1)
    tokens_per_window: int | None = Field(default=None, ge=1)
    cost_per_window: float | None = Field(default=None, gt=0)
    steps_per_window: int | None = Field(default=None, ge=1)
    window_seconds: float = Field(default=60.0, gt=0)


@dataclass(slots=True)
class MessageSpend:
    tokens: int = 0
    cost: float = 0.0
    steps: int = 0


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    tokens: int
    cost: float
    steps: int


class BudgetLedger:
    """The window's spending. Thread-safe; clock is injectable (monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: deque[_Entry] = deque()
        self._lock = threading.Lock()

    def _prune(self, window: float) -> None:
        horizon = self._clock() - window
        while self._entries and self._entries[0].at <= horizon:
            self._entries.popleft()

    def totals(self, window: float) -> MessageSpend:
        with self._lock:
            self._prune(window)
            return MessageSpend(
                tokens=sum(e.tokens for e in self._entries),
                cost=sum(e.cost for e in self._entries),
                steps=sum(e.steps for e in self._entries),
            )

    def charge(self, tokens: int, cost: float, steps: int) -> None:
        with self._lock:
            self._entries.append(_Entry(self._clock(), tokens, cost, steps))


def exceeded(
    budget: Budget, message: MessageSpend, window: MessageSpend
) -> tuple[FailureReason, str] | None:
    """The first limit that the spending so far breaks, with a readable reason."""
    checks = (
        (
            budget.tokens_per_message,
            message.tokens,
            FailureReason.BUDGET_TOKENS,
            "tokens per message",
        ),
        (budget.cost_per_message, message.cost, FailureReason.BUDGET_COST, "cost per message"),
        (budget.steps_per_message, message.steps, FailureReason.BUDGET_STEPS, "steps per message"),
        (budget.tokens_per_window, window.tokens, FailureReason.BUDGET_TOKENS, "tokens per window"),
        (budget.cost_per_window, window.cost, FailureReason.BUDGET_COST, "cost per window"),
        (budget.steps_per_window, window.steps, FailureReason.BUDGET_STEPS, "steps per window"),
    )
    for limit, spent, reason, what in checks:
        if limit is not None and spent > limit:
            return reason, f"budget exceeded: {what} {spent:g} > {limit:g}"
    return None
