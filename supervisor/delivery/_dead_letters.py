"""Dead letters: every message that was not handled, with its reason. Nothing is dropped
silently: each one is counted and the most recent ones are kept for inspection.

A kept letter never holds on to a large payload (10,000 dropped 1 MB tells must not keep 10 GB
alive): it keeps the payload's type, an estimate of its size and a short redacted preview, and
the payload itself only when it is a small scalar or string."""

from __future__ import annotations

import dataclasses
import itertools
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from actors._redaction import redact, redact_text

from .._events import emit

__all__ = ["DeadLetter", "DeadLetterOffice", "summarize"]

KEEP_MAX = 1024  # a str / bytes payload of at most this many characters / bytes is kept whole
PREVIEW_CHARS = 200
_SAMPLE_ITEMS = 16  # elements of a container looked at for the preview and the size estimate
_SAMPLE_DEPTH = 4
_SCALARS = (bool, int, float)
_BINARY = (bytes, bytearray, memoryview)


class DeadLetter(BaseModel):
    """reason: deadline_expired (its ask or tell deadline passed while queued),
    mailbox_overflow (dropped by drop_oldest), poison (crashed its handler on every retry);
    for a tell that nobody could handle, the status it would have been answered with:
    failure (its handler failed, or its path was stopped, removed or the tree failed),
    rejected (breaker open or mailbox full), timeout (its handler overran its deadline).

    message: the payload itself only if it is None, a bool, int or float, or a str / bytes of
    at most 1 KiB; otherwise None (a kept letter must not keep a large payload alive).
    message_type: the payload's type name. message_size: an estimate of its size (characters
    of a str, bytes of bytes; for other objects, the length of their text form, estimated
    from a sample of their elements: never computed by serialising it whole). preview: its
    first ~200 characters as text, secrets redacted."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str
    message: Any
    message_type: str = ""
    message_size: int = 0
    preview: str = ""
    message_id: int
    trace_id: str
    attempts: int
    error: str | None = None
    at: float  # wall-clock seconds, for display
    restored: bool = False  # kept in the store by an earlier run (a durable agent's)


class DeadLetterOffice:
    """The system's dead letters: the last `keep` kept, every one counted. `sink` (set when
    the system has a store) also keeps those of durable agents' messages in the store, and
    restore() brings back the ones an earlier run kept there."""

    def __init__(self, keep: int = 10_000) -> None:
        self._kept: deque[DeadLetter] = deque(maxlen=keep)
        self._counts: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.sink: Callable[[DeadLetter], None] | None = None
        self.keep = keep

    def restore(self, letters: Iterable[DeadLetter]) -> None:
        """Letters of an earlier run, kept (marked restored), not counted again."""
        with self._lock:
            self._kept.extend(letter.model_copy(update={"restored": True}) for letter in letters)

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
        persist: bool = False,
    ) -> None:
        """persist: a durable agent's message, kept in the store too (through `sink`)."""
        kept, type_name, size, preview = summarize(message)
        letter = DeadLetter(
            path=path,
            reason=reason,
            message=kept,
            message_type=type_name,
            message_size=size,
            preview=preview,
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
        sink = self.sink
        if persist and sink is not None:
            sink(letter)
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


# -- payload summaries -------------------------------------------------------------------------


def summarize(message: Any) -> tuple[Any, str, int, str]:
    """(the payload if small enough to keep, its type name, its estimated size, its preview).
    Costs O(preview), not O(payload), for strings, bytes, containers and pydantic models.
    Never raises (a payload's __repr__ is user code)."""
    try:
        size = _size(message, 0)
        preview = _preview(message)
    except Exception:  # noqa: BLE001 - a dead letter is posted whatever the payload does
        size, preview = sys.getsizeof(message, 0), f"<{type(message).__name__}>"
    small = (
        message is None
        or isinstance(message, (bool, float))
        or (isinstance(message, (int, str, bytes)) and size <= KEEP_MAX)
    )
    return (message if small else None), type(message).__name__, size, preview


def _preview(message: Any) -> str:
    if isinstance(message, str):
        text, cut = message[: 2 * PREVIEW_CHARS], len(message) > 2 * PREVIEW_CHARS
    else:
        sample = _sample(message, 0)  # a str stands for an object shown by its repr
        text, cut = (sample if isinstance(sample, str) else repr(redact(sample))), False
    text = redact_text(text)  # on twice the kept length: a secret cut in half is still seen
    if cut or len(text) > PREVIEW_CHARS:
        return text[:PREVIEW_CHARS] + "..."
    return text


def _fields(obj: Any) -> dict[str, Any] | None:
    """A pydantic model's or dataclass's fields, without copying their values."""
    if isinstance(obj, BaseModel):
        return dict(obj.__dict__)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    return None


def _sample(obj: Any, depth: int) -> Any:
    """A small stand-in for obj (strings cut, containers sampled) to preview it from."""
    if isinstance(obj, int) and not isinstance(obj, bool) and obj.bit_length() > 512:
        return f"<int of about {_size(obj, 0)} digits>"
    if obj is None or isinstance(obj, _SCALARS):
        return obj
    if isinstance(obj, str):
        return obj[: 2 * PREVIEW_CHARS]
    if isinstance(obj, _BINARY):
        return bytes(obj[: 2 * PREVIEW_CHARS])
    if depth >= _SAMPLE_DEPTH:
        return f"<{type(obj).__name__}>"
    fields = _fields(obj)
    if fields is not None:
        return {"__type__": type(obj).__name__, **_sample(fields, depth + 1)}
    if isinstance(obj, Mapping):
        return {
            k if isinstance(k, (str, *_SCALARS)) else repr(k)[:40]: _sample(v, depth + 1)
            for k, v in itertools.islice(obj.items(), _SAMPLE_ITEMS)
        }
    if isinstance(obj, (list, tuple, set, frozenset, deque)):
        items = [_sample(v, depth + 1) for v in itertools.islice(obj, _SAMPLE_ITEMS)]
        return items if isinstance(obj, list) else tuple(items)
    return repr(obj)[: 2 * PREVIEW_CHARS]


def _size(obj: Any, depth: int) -> int:
    """Estimated length of obj's text form, from at most _SAMPLE_ITEMS elements a level."""
    if obj is None or isinstance(obj, (bool, float)):
        return len(repr(obj))
    if isinstance(obj, int):
        return max(1, obj.bit_length() * 30103 // 100000 + 1)  # digits, without str(obj)
    if isinstance(obj, (str, bytes, bytearray)):
        return len(obj)
    if isinstance(obj, memoryview):
        return obj.nbytes
    fields = None if depth >= _SAMPLE_DEPTH else _fields(obj)
    if fields is not None:
        return len(type(obj).__name__) + _size(fields, depth + 1)
    if depth < _SAMPLE_DEPTH and isinstance(obj, Mapping):
        pairs = list(itertools.islice(obj.items(), _SAMPLE_ITEMS))
        seen = sum(_size(k, depth + 1) + _size(v, depth + 1) + 4 for k, v in pairs)
        return 2 + _extrapolate(seen, len(pairs), len(obj))
    if depth < _SAMPLE_DEPTH and isinstance(obj, (list, tuple, set, frozenset, deque)):
        items = list(itertools.islice(obj, _SAMPLE_ITEMS))
        seen = sum(_size(v, depth + 1) + 2 for v in items)
        return 2 + _extrapolate(seen, len(items), len(obj))
    return sys.getsizeof(obj, 0)


def _extrapolate(seen: int, sampled: int, total: int) -> int:
    return seen if sampled >= total or sampled == 0 else seen * total // sampled
