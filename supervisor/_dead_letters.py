"""Dead letters: every message that was not handled, with its reason. Nothing is dropped
silently: each one is counted and the most recent ones are kept for inspection."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

from pydantic import BaseModel, ConfigDict

from actors._redaction import redact_text

from ._events import emit

__all__ = ["DeadLetter", "DeadLetterOffice"]


class DeadLetter(BaseModel):
    """reason: deadline_expired (its ask or tell deadline passed while queued),
    mailbox_overflow (dropped by drop_oldest), poison (crashed its handler on every retry);
    for a tell that nobody could handle, the status it would have been answered with:
    failure (its handler failed, or its path was stopped, removed or the tree failed),
    rejected (breaker open or mailbox full), timeout (its handler overran its deadline)."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str
    message: Any
    message_id: int
    trace_id: str
    attempts: int
    error: str | None = None
    at: float  # wall-clock seconds, for display


class DeadLetterOffice:
    def __init__(self, keep: int = 10_000) -> None:
        self._kept: deque[DeadLetter] = deque(maxlen=keep)
        self._counts: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()
        self._lock = threading.Lock()

    def post(
        self,
        *,
        path: str,
        reason: str,
        message: Any,
        message_id: int,
        trace_id: str,
        attempts: int,
        error: str | None = None,
    ) -> None:
        letter = DeadLetter(
            path=path,
            reason=reason,
            message=message,
            message_id=message_id,
            trace_id=trace_id,
            attempts=attempts,
            error=redact_text(error) if error is not None else None,
            at=time.time(),
        )
        with self._lock:
            self._kept.append(letter)
            self._counts[reason] += 1
            self._by_path[path] += 1
        emit(
            "message_dead_lettered",
            level="warning",
            path=path,
            reason=reason,
            message_id=message_id,
            trace_id=trace_id,
            attempts=attempts,
        )

    def letters(self, path: str | None = None, reason: str | None = None) -> list[DeadLetter]:
        with self._lock:
            kept = list(self._kept)
        return [
            d
            for d in kept
            if (path is None or d.path == path) and (reason is None or d.reason == reason)
        ]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def count_for(self, path: str) -> int:
        return self._by_path.get(path, 0)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
