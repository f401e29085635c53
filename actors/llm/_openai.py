"""OpenAICompatibleLLM: any OpenAI-compatible `/chat/completions` endpoint over httpx, with
retries on 429 and 5xx, and the API key kept out of every message and repr."""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import SecretStr

from ._types import (
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

__all__ = ["OpenAICompatibleLLM", "parse_retry_after"]

_EXCERPT = 200


@dataclass(frozen=True)
class _Failure:
    """A retryable failure: the error to raise if no retry is left, and the server's wish."""

    error: type[LLMError]
    message: str
    retry_after: float | None = None


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class OpenAICompatibleLLM:
    """`LLMClient` and `AsyncLLMClient` for an OpenAI-compatible chat-completions API.

    `base_url`, `model` and `api_key` fall back to `OPENAI_BASE_URL` (else the OpenAI API),
    `OPENAI_MODEL` (else gpt-4o-mini) and `OPENAI_API_KEY` (else no Authorization header).
    `timeout` bounds each HTTP phase (connect, write, each read) of one attempt; a call's
    `timeout` argument is an overall budget for that call, retries included. 429 and 5xx
    answers (and connection failures) are retried up to `max_retries` times, after the
    server's `Retry-After`/`retry-after-ms` (capped at `max_retry_after`) or else after
    `backoff_base * 2**attempt` seconds (capped at `backoff_max`, jittered down to half when
    `jitter`). Raises `LLMRateLimitError`/`LLMServerError`/`LLMError` when retries run out,
    `LLMTimeoutError` on a timeout (not retried), `LLMResponseError` for a 2xx body that is not
    a chat completion, and `LLMError` (with status and a body excerpt) for any other status.
    `extra_body` is merged into every request (temperature, max_tokens, ...). Costs come from
    the per-1k-token prices. `sleep`/`async_sleep` wait between retries (tests inject them).

    Connections are pooled: one `httpx.Client`, and one `httpx.AsyncClient` bound to the
    first event loop that calls `acomplete` (calls from another loop use a client of their own,
    closed after the call). `close()` closes the sync pool, `aclose()` both; both clients reopen
    lazily if used again. Cancelling an `acomplete` task closes its in-flight request.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        jitter: bool = True,
        prompt_cost_per_1k: float = 0.0,
        completion_cost_per_1k: float = 0.0,
        extra_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = _asyncio_sleep,
    ) -> None:
        if timeout <= 0 or max_retries < 0 or min(backoff_base, backoff_max, max_retry_after) < 0:
            raise ValueError("timeout must be > 0; retries and backoff values >= 0")
        base = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        self.url = base.rstrip("/") + "/chat/completions"
        self.model = model or os.environ.get("OPENAI_MODEL") or "gpt-4o-mini"
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._api_key = SecretStr(key) if key else None
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.jitter = jitter
        self.prompt_cost_per_1k = prompt_cost_per_1k
        self.completion_cost_per_1k = completion_cost_per_1k
        self.extra_body = dict(extra_body or {})
        self._headers = httpx.Headers({"Accept": "application/json", **(headers or {})})
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._random = random.Random()
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None
        self._aclient_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"OpenAICompatibleLLM(url={self.url!r}, model={self.model!r}, api_key={key})"

    def complete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        payload = self._payload(messages, tools)
        deadline = None if timeout is None else time.monotonic() + timeout
        client = self._sync_client()
        attempt = 0
        while True:
            try:
                answer = client.post(
                    self.url, json=payload, headers=self._auth(), timeout=self._budget(deadline)
                )
            except httpx.HTTPError as exc:
                outcome: LLMResponse | _Failure = self._transport_failure(exc)
            else:
                outcome = self._outcome(answer)
            if isinstance(outcome, LLMResponse):
                return outcome
            self._sleep(self._retry_delay(outcome, attempt, deadline))
            attempt += 1

    async def acomplete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        payload = self._payload(messages, tools)
        deadline = None if timeout is None else time.monotonic() + timeout
        client, own = self._async_client()
        try:
            attempt = 0
            while True:
                try:
                    answer = await client.post(
                        self.url, json=payload, headers=self._auth(), timeout=self._budget(deadline)
                    )
                except httpx.HTTPError as exc:
                    outcome: LLMResponse | _Failure = self._transport_failure(exc)
                else:
                    outcome = self._outcome(answer)
                if isinstance(outcome, LLMResponse):
                    return outcome
                await self._async_sleep(self._retry_delay(outcome, attempt, deadline))
                attempt += 1
        finally:
            if own:
                await client.aclose()

    def close(self) -> None:
        """Close the sync connection pool (the async one needs `aclose()`)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both connection pools. Call it on the loop that used `acomplete`."""
        self.close()
        with self._lock:
            aclient, self._aclient, self._aclient_loop = self._aclient, None, None
        if aclient is not None:
            await aclient.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(headers=self._headers, timeout=self.timeout)
            return self._client

    def _async_client(self) -> tuple[httpx.AsyncClient, bool]:
        """The pooled client if this loop owns it (or may take it over), else a private one
        (True: the caller must close it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            stale = self._aclient_loop is not None and self._aclient_loop.is_closed()
            if self._aclient is None or stale:
                self._aclient = httpx.AsyncClient(headers=self._headers, timeout=self.timeout)
                self._aclient_loop = loop
            if self._aclient_loop is loop:
                return self._aclient, False
        return httpx.AsyncClient(headers=self._headers, timeout=self.timeout), True

    def _budget(self, deadline: float | None) -> float:
        if deadline is None:
            return self.timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise LLMTimeoutError(f"no time left for a request to {self.url}")
        return min(self.timeout, left)

    def _auth(self) -> dict[str, str]:
        """Built per request, so the key lives only in the `SecretStr`."""
        key = self._api_key.get_secret_value() if self._api_key else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _transport_failure(self, exc: httpx.HTTPError) -> _Failure:
        """A retryable failure for a connection problem; raises for a timeout (not retried)
        and for a body httpx could not decode."""
        what = f"{type(exc).__name__} on {self.url}"
        if isinstance(exc, httpx.TimeoutException):
            raise LLMTimeoutError(f"no answer in time ({what})") from exc
        if not isinstance(exc, httpx.TransportError):
            raise LLMResponseError(f"unreadable response ({what}): {self._excerpt(str(exc))}")
        return _Failure(LLMError, f"connection failed ({what}): {self._excerpt(str(exc))}")

    def _outcome(self, answer: httpx.Response) -> LLMResponse | _Failure:
        status = answer.status_code
        if 200 <= status < 300:
            return self._parse(answer)
        message = f"HTTP {status} from {self.url}: {self._excerpt(answer.text)}"
        retry_after = parse_retry_after(answer.headers)
        if status == 429:
            return _Failure(LLMRateLimitError, message, retry_after)
        if status >= 500:
            return _Failure(LLMServerError, message, retry_after)
        raise LLMError(message)

    def _retry_delay(self, failure: _Failure, attempt: int, deadline: float | None) -> float:
        """Seconds to wait before retry number `attempt + 1`, or raise `failure` if none is
        left (out of retries, or the wait would pass the call's deadline)."""
        if attempt >= self.max_retries:
            raise failure.error(f"{failure.message} (after {attempt + 1} attempts)")
        if failure.retry_after is not None:
            delay = min(failure.retry_after, self.max_retry_after)
        else:
            delay = min(self.backoff_max, self.backoff_base * 2**attempt)
            if self.jitter:
                delay *= 0.5 + self._random.random() / 2
        if deadline is not None and time.monotonic() + delay >= deadline:
            raise failure.error(f"{failure.message} (no time left to retry)")
        return delay

    def _excerpt(self, text: str) -> str:
        """At most `_EXCERPT` characters of `text`, whitespace collapsed, the key masked."""
        short = " ".join(text.split())
        if self._api_key:
            short = short.replace(self._api_key.get_secret_value(), "***")
        return short[:_EXCERPT]

    def _payload(
        self, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, **self.extra_body}
        payload["messages"] = [_wire_message(m) for m in messages]
        if tools:
            payload["tools"] = [
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
        return payload

    def _parse(self, answer: httpx.Response) -> LLMResponse:
        try:
            body = answer.json()
            choice = body["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                raise TypeError("content is not a string")
            calls = tuple(
                _parse_tool_call(raw, index)
                for index, raw in enumerate(message.get("tool_calls") or ())
            )
            usage = body.get("usage") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            model = body.get("model")
            finish = choice.get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:_EXCERPT]
            raise LLMResponseError(
                f"not a chat completion from {self.url} ({detail}): {self._excerpt(answer.text)}"
            ) from exc
        cost = (prompt * self.prompt_cost_per_1k + completion * self.completion_cost_per_1k) / 1000
        return LLMResponse(
            content=content,
            tool_calls=calls,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost),
            model=model if isinstance(model, str) else self.model,
            finish_reason=finish if isinstance(finish, str) else None,
        )


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


def _parse_tool_call(raw: Any, index: int) -> ToolCall:
    function = raw["function"]
    name = function["name"]
    if not isinstance(name, str):
        raise TypeError("tool call name is not a string")
    arguments: dict[str, Any] | str = function.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            parsed = None
        arguments = parsed if isinstance(parsed, dict) else arguments
    elif not isinstance(arguments, dict):
        arguments = json.dumps(arguments)
    return ToolCall(id=str(raw.get("id") or f"call_{index}"), name=name, arguments=arguments)
