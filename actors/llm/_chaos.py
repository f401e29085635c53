"""ChaosLLM: wraps any client and injects the seed article's production failures, reproducibly.

The article's failure log: agents timing out after 300 s, infinite reasoning loops, tool calls
with invalid parameters (`{'action': 'delete', 'target': None}`), hallucinated tool selections
and invalid outputs. Each is one fault kind here, injected at a configured rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ._types import (
    AsyncLLMClient,
    LLMClient,
    LLMError,
    LLMMessage,
    LLMResponse,
    LLMTimeoutError,
    ToolCall,
    ToolSchema,
)

__all__ = ["FAULT_KINDS", "ChaosLLM"]

FAULT_KINDS: Final[tuple[str, ...]] = (
    "slow",
    "hang",
    "invalid_json",
    "hallucinated_tool",
    "invalid_parameters",
    "endless_loop",
    "exception",
)
"""Every fault ChaosLLM can inject, in the order their rates are laid out on [0, 1)."""

_INVALID_JSON: Final = (
    '{"action": "search", "query": "weather in Par',
    '{"action": "respond", "text": "done",}',
    "{'action': 'respond', 'text': 'single quotes'}",
    '```json\n{"action": "respond", "text": "fenced"\n```',
)
_PHANTOM_TOOLS: Final = (
    "delete_all_records",
    "execute_shell_command",
    "send_wire_transfer",
    "admin_override",
)
_ARTICLE_BAD_ARGS: Final[dict[str, Any]] = {"action": "delete", "target": None}
# A valid sample of each JSON type; a wrong value for a field typed otherwise.
_SAMPLES: Final[dict[str, Any]] = {
    "string": "example",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [],
    "object": {},
}
_MAX_LOOPING_CONVERSATIONS: Final = 1024
_AsyncWaiter: TypeAlias = tuple[asyncio.AbstractEventLoop, asyncio.Event]


@dataclass(frozen=True)
class _Plan:
    """One call's fate: hang (kind), raise `error`, return `response`, or delegate (after a
    delay if kind is "slow"; with `lock_key`, its conversation then loops on the reply)."""

    kind: str | None
    response: LLMResponse | None = None
    error: LLMError | None = None
    lock_key: str | None = None


class ChaosLLM:
    """Wraps `inner` (an `LLMClient` and/or `AsyncLLMClient`) and injects faults.

    `rates` maps names in `FAULT_KINDS` to probabilities (each in [0, 1], summing to <= 1);
    kinds left out are never injected, so with no rates this is a transparent pass-through.
    Every call draws exactly one number from a private `random.Random(seed)` (under a lock),
    so the n-th call's fault depends only on the seed and n; the details of a fault (which
    malformed text, which field to break) come from a second generator seeded the same way.
    Same seed and same call sequence therefore give the same faults.

    Faults:
    - `slow`: waits `slow_seconds`, then delegates.
    - `hang`: blocks for `hang_seconds` (default an hour), ignoring `timeout`, then raises
      `LLMTimeoutError`. `release()` ends every current and later hang at once (also with
      `LLMTimeoutError`) until `rearm()`. The async hang awaits an asyncio event, so
      cancelling its task ends it.
    - `invalid_json`: content that is not valid JSON, no tool calls.
    - `hallucinated_tool`: a call to a tool name not among the offered `tools`.
    - `invalid_parameters`: a call to an offered tool whose arguments break its JSON schema (a
      required field missing, null or of the wrong type); with no tools offered, a call to
      `execute` with the article's `{"action": "delete", "target": None}`.
    - `endless_loop`: the conversation (identified by its messages up to the first user
      message) is stuck: every later call in it repeats the same tool call, whatever the
      rates. The call repeated is the last tool call in the messages, or else the inner
      client's reply to the triggering call (repeated as content if it had no tool calls).
    - `exception`: raises `LLMError`.

    `.injected` counts injected faults by kind (each call answered by a stuck loop counts).
    """

    def __init__(
        self,
        inner: LLMClient | AsyncLLMClient,
        *,
        rates: dict[str, float] | None = None,
        seed: int = 0,
        slow_seconds: float = 2.0,
        hang_seconds: float = 3600.0,
    ) -> None:
        rates = dict(rates or {})
        unknown = set(rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        if any(not 0.0 <= r <= 1.0 for r in rates.values()):
            raise ValueError("fault rates must be within [0, 1]")
        if sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        if slow_seconds < 0 or hang_seconds < 0:
            raise ValueError("slow_seconds and hang_seconds must be >= 0")
        if not hasattr(inner, "complete") and not hasattr(inner, "acomplete"):
            raise TypeError("inner must have complete() or acomplete()")
        self.inner = inner
        self.rates = {kind: rates.get(kind, 0.0) for kind in FAULT_KINDS}
        self.seed = seed
        self.slow_seconds = slow_seconds
        self.hang_seconds = hang_seconds
        self.injected: Counter[str] = Counter()
        self.call_count = 0
        self._rng = random.Random(seed)
        self._detail_rng = random.Random(f"chaos-detail-{seed}")
        self._lock = threading.Lock()
        self._loops: OrderedDict[str, LLMResponse] = OrderedDict()
        self._ids = 0
        self._released = threading.Event()
        self._hang_changed = threading.Condition(self._lock)
        self._hanging = 0
        self._async_hangs: set[_AsyncWaiter] = set()

    # crosses to a worker process (isolation="process") pickled: what coordinates threads
    # and loops here is made anew there (hung calls belong to this process only)
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_lock", "_released", "_hang_changed", "_async_hangs"):
            state.pop(name, None)
        state["_hanging"] = 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._hang_changed = threading.Condition(self._lock)
        self._async_hangs = set()

    def __repr__(self) -> str:
        active = {k: r for k, r in self.rates.items() if r}
        return f"ChaosLLM({self.inner!r}, rates={active}, seed={self.seed})"

    def complete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        plan = self._plan(messages, tools)
        if plan.kind == "hang":
            self._hang_sync()
        if plan.error is not None:
            raise plan.error
        if plan.response is not None:
            return plan.response
        if plan.kind == "slow":
            time.sleep(self.slow_seconds)
        return self._adopt(plan, self._inner_complete(messages, tools, timeout))

    async def acomplete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        plan = self._plan(messages, tools)
        if plan.kind == "hang":
            await self._hang_async()
        if plan.error is not None:
            raise plan.error
        if plan.response is not None:
            return plan.response
        if plan.kind == "slow":
            await asyncio.sleep(self.slow_seconds)
        return self._adopt(plan, await self._inner_acomplete(messages, tools, timeout))

    @property
    def hanging(self) -> int:
        """How many calls are hanging right now."""
        with self._lock:
            return self._hanging

    def wait_hanging(self, count: int = 1, timeout: float | None = None) -> bool:
        """Block until at least `count` calls are hanging; False if `timeout` passed first."""
        with self._hang_changed:
            return self._hang_changed.wait_for(lambda: self._hanging >= count, timeout)

    def release(self) -> None:
        """End every hanging call now (each raises `LLMTimeoutError`); later hangs end at once
        too, until `rearm()`."""
        with self._lock:
            self._released.set()
            waiters = list(self._async_hangs)
        for loop, event in waiters:
            # A closed loop raises here; nothing is waiting on it any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def rearm(self) -> None:
        """Make later `hang` faults block again after a `release()`."""
        self._released.clear()

    def _hang_sync(self) -> None:
        self._count_hang(+1)
        try:
            released = self._released.wait(self.hang_seconds)
        finally:
            self._count_hang(-1)
        raise _hang_error(released, self.hang_seconds)

    async def _hang_async(self) -> None:
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        self._count_hang(+1, waiter)
        try:
            await asyncio.wait_for(waiter[1].wait(), self.hang_seconds)
            released = True
        except TimeoutError:
            released = False
        finally:
            self._count_hang(-1, waiter)
        raise _hang_error(released, self.hang_seconds)

    def _count_hang(self, step: int, waiter: _AsyncWaiter | None = None) -> None:
        with self._hang_changed:
            self._hanging += step
            if waiter is not None and step > 0:
                self._async_hangs.add(waiter)
                if self._released.is_set():
                    waiter[1].set()
            elif waiter is not None:
                self._async_hangs.discard(waiter)
            self._hang_changed.notify_all()

    def _plan(self, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]) -> _Plan:
        key = _conversation_key(messages)
        with self._lock:
            self.call_count += 1
            draw = self._rng.random()
            stuck = self._loops.get(key)
            if stuck is not None:
                self.injected["endless_loop"] += 1
                return _Plan("endless_loop", response=self._fresh_ids(stuck))
            kind = self._kind_for(draw)
            if kind is None:
                return _Plan(None)
            self.injected[kind] += 1
            return self._fault(kind, key, messages, tools)

    def _kind_for(self, draw: float) -> str | None:
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += self.rates[kind]
            if draw < edge:
                return kind
        return None

    def _fault(
        self, kind: str, key: str, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]
    ) -> _Plan:
        rng = self._detail_rng
        if kind in ("slow", "hang"):
            return _Plan(kind)
        if kind == "exception":
            return _Plan(
                kind, error=LLMError(f"chaos: injected LLM failure (call {self.call_count})")
            )
        if kind == "invalid_json":
            return _Plan(kind, response=_reply(content=rng.choice(_INVALID_JSON)))
        if kind == "hallucinated_tool":
            name = rng.choice(_PHANTOM_TOOLS)
            while name in {t.name for t in tools}:
                name += "_v2"
            call = self._call(name, {"target": "*", "confirm": True})
            return _Plan(kind, response=_reply(tool_calls=(call,)))
        if kind == "invalid_parameters":
            if tools:
                tool = rng.choice(list(tools))
                call = self._call(tool.name, _break_arguments(tool.parameters, rng))
            else:
                call = self._call("execute", dict(_ARTICLE_BAD_ARGS))
            return _Plan(kind, response=_reply(tool_calls=(call,)))
        # endless_loop: repeat the conversation's last tool call, or lock onto the inner reply.
        previous = _last_tool_call(messages)
        if previous is None:
            return _Plan(kind, lock_key=key)
        stuck = _reply(tool_calls=(previous,))
        self._remember_loop(key, stuck)
        return _Plan(kind, response=self._fresh_ids(stuck))

    def _adopt(self, plan: _Plan, reply: LLMResponse) -> LLMResponse:
        """The inner client's reply; a triggered endless loop locks its conversation onto it."""
        if plan.lock_key is not None:
            with self._lock:
                self._remember_loop(plan.lock_key, reply)
        return reply

    def _remember_loop(self, key: str, reply: LLMResponse) -> None:
        self._loops[key] = reply
        while len(self._loops) > _MAX_LOOPING_CONVERSATIONS:
            self._loops.popitem(last=False)

    def _call(self, name: str, arguments: dict[str, Any] | str) -> ToolCall:
        self._ids += 1
        return ToolCall(id=f"chaos_{self._ids}", name=name, arguments=arguments)

    def _fresh_ids(self, stuck: LLMResponse) -> LLMResponse:
        calls = tuple(self._call(c.name, c.arguments) for c in stuck.tool_calls)
        return stuck.model_copy(update={"tool_calls": calls})

    def _inner_complete(
        self, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema], timeout: float | None
    ) -> LLMResponse:
        if not isinstance(self.inner, LLMClient):
            raise TypeError(f"{type(self.inner).__name__} has no complete(); use acomplete()")
        return self.inner.complete(messages, tools, timeout=timeout)

    async def _inner_acomplete(
        self, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema], timeout: float | None
    ) -> LLMResponse:
        if isinstance(self.inner, AsyncLLMClient):
            return await self.inner.acomplete(messages, tools, timeout=timeout)
        return await asyncio.to_thread(self._inner_complete, messages, tools, timeout)


def _hang_error(released: bool, seconds: float) -> LLMTimeoutError:
    why = "released" if released else f"no answer after {seconds:g} s"
    return LLMTimeoutError(f"chaos: injected hang ({why})")


def _reply(content: str | None = None, tool_calls: tuple[ToolCall, ...] = ()) -> LLMResponse:
    return LLMResponse(
        content=content,
        tool_calls=tool_calls,
        model="chaos",
        finish_reason="tool_calls" if tool_calls else "stop",
    )


def _conversation_key(messages: Sequence[LLMMessage]) -> str:
    """The messages through the first user message: stable while a conversation grows."""
    head: list[LLMMessage] = []
    for message in messages:
        head.append(message)
        if message.role == "user":
            break
    return "\x1e".join(m.model_dump_json() for m in head)


def _last_tool_call(messages: Sequence[LLMMessage]) -> ToolCall | None:
    for message in reversed(messages):
        if message.role == "assistant" and message.tool_calls:
            return message.tool_calls[-1]
    return None


def _break_arguments(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Arguments that violate `schema`: plausible values for the required fields, then one
    required field dropped, nulled or given the wrong type (or an optional one mistyped)."""
    props: dict[str, Any] = schema.get("properties") or {}
    required = [r for r in schema.get("required") or () if isinstance(r, str)]
    args = {name: _plausible(props.get(name) or {}) for name in required}
    if required:
        victim = rng.choice(required)
        allowed = _types_of(props.get(victim) or {})
        modes = ["missing"]
        if allowed and "null" not in allowed:
            modes.append("null")
        if allowed:
            modes.append("wrong_type")
        mode = rng.choice(modes)
        if mode == "missing":
            del args[victim]
        else:
            args[victim] = None if mode == "null" else _wrong_value(allowed)
        return args
    typed = sorted(name for name, spec in props.items() if _types_of(spec or {}))
    if typed:
        victim = rng.choice(typed)
        args[victim] = _wrong_value(_types_of(props[victim]))
        return args
    return dict(_ARTICLE_BAD_ARGS)


def _types_of(spec: dict[str, Any]) -> set[str]:
    declared = spec.get("type")
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    return {declared} if isinstance(declared, str) else set()


def _wrong_value(allowed: set[str]) -> Any:
    """A value of a JSON type `allowed` does not admit (null if it admits every other)."""
    for json_type, value in _SAMPLES.items():
        numeric = json_type in ("integer", "number") and bool(allowed & {"integer", "number"})
        if json_type not in allowed and not numeric:
            return value
    return None


def _plausible(spec: dict[str, Any]) -> Any:
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kinds = _types_of(spec)
    return next((value for t, value in _SAMPLES.items() if t in kinds), "example")
