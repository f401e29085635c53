"""OpenAICompatibleLLM: any OpenAI-compatible `/chat/completions` endpoint over httpx, with
retries on 429 and 5xx, and the API key kept out of every message and repr."""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

import httpx
from httpx._client import UseClientDefault
from pydantic import SecretStr

from .._redaction import MASK, redact_text
from ._types import (
    LLMError,
    LLMMessage,
    LLMRateLimitError,
    LLMResponse,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    ToolSchema,
    Usage,
)
from ._wire import MalformedCompletion, encode_payload, parse_completion, parse_retry_after, payload

__all__ = ["OpenAICompatibleLLM", "mask_userinfo", "parse_retry_after", "split_userinfo"]

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
    Credentials in the URL (`https://user:pw@host/v1`) are taken out of it and sent as basic
    auth; `url`, the repr and every error show the URL without them.
    `timeout` bounds each HTTP phase (connect, write, each read) of one attempt; a call's
    `timeout` argument is an overall budget for that call, retries included. 429 and 5xx
    answers (and connection failures) are retried up to `max_retries` times, after the
    server's `Retry-After`/`retry-after-ms` (capped at `max_retry_after`) or else after
    `backoff_base * 2**attempt` seconds (capped at `backoff_max`, jittered down to half when
    `jitter`). Raises `LLMRateLimitError`/`LLMServerError`/`LLMError` when retries run out,
    `LLMTimeoutError` on a timeout (not retried), `LLMResponseError` for a 2xx body that is not
    a sound chat completion (not JSON, nested too deeply, wrong shapes, negative or non-finite
    usage, strings that are not valid Unicode...), and `LLMError` (with status and a body
    excerpt) for any other status. A retry whose wait does not fit in what is left of the call's
    `timeout` is not attempted: the error is raised at once.
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
        prices = (prompt_cost_per_1k, completion_cost_per_1k)
        if not all(math.isfinite(p) and p >= 0 for p in prices):
            raise ValueError("token prices must be finite and >= 0")
        base = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        url, userinfo = split_userinfo(base.rstrip("/") + "/chat/completions")
        self.url = url
        user, _, password = (userinfo or "").partition(":")
        self._user = SecretStr(unquote(user)) if userinfo is not None else None
        self._password = SecretStr(unquote(password)) if password else None
        self._where = mask_userinfo(url.replace("://", f"://{MASK}@", 1) if userinfo else url)
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

    # a client given in a ChildSpec's kwargs crosses to a worker process (isolation="process")
    # pickled: its connections and lock are made anew there, on first use
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_lock", "_client", "_aclient", "_aclient_loop"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._client = None
        self._aclient = None
        self._aclient_loop = None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return f"OpenAICompatibleLLM(url={self._where!r}, model={self.model!r}, api_key={key})"

    def complete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        body = self._body(messages, tools)
        deadline = None if timeout is None else time.monotonic() + timeout
        client = self._sync_client()
        attempt = 0
        while True:
            try:
                answer = client.post(
                    self.url,
                    content=body,
                    headers=self._auth(),
                    auth=self._url_auth(),
                    timeout=self._budget(deadline),
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
        body = self._body(messages, tools)
        deadline = None if timeout is None else time.monotonic() + timeout
        client, own = self._async_client()
        try:
            attempt = 0
            while True:
                try:
                    answer = await client.post(
                        self.url,
                        content=body,
                        headers=self._auth(),
                        auth=self._url_auth(),
                        timeout=self._budget(deadline),
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
            raise LLMTimeoutError(f"no time left for a request to {self._where}")
        return min(self.timeout, left)

    def _auth(self) -> dict[str, str]:
        """Built per request, so the key lives only in the `SecretStr`."""
        key = self._api_key.get_secret_value() if self._api_key else ""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _url_auth(self) -> httpx.BasicAuth | UseClientDefault:
        """Basic auth from the URL's credentials, built per request like `_auth`."""
        if self._user is None:
            return httpx.USE_CLIENT_DEFAULT
        password = self._password.get_secret_value() if self._password else ""
        return httpx.BasicAuth(self._user.get_secret_value(), password)

    def _transport_failure(self, exc: httpx.HTTPError) -> _Failure:
        """A retryable failure for a connection problem; raises for a timeout (not retried)
        and for a body httpx could not decode."""
        what = f"{type(exc).__name__} on {self._where}"
        if isinstance(exc, httpx.TimeoutException):
            raise LLMTimeoutError(f"no answer in time ({what})") from exc
        if not isinstance(exc, httpx.TransportError):
            raise LLMResponseError(
                f"unreadable response ({what}): {self._excerpt(str(exc))}"
            ) from None
        return _Failure(LLMError, f"connection failed ({what}): {self._excerpt(str(exc))}")

    def _outcome(self, answer: httpx.Response) -> LLMResponse | _Failure:
        status = answer.status_code
        if 200 <= status < 300:
            return self._parse(answer)
        message = f"HTTP {status} from {self._where}: {self._excerpt(answer.text)}"
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
        if deadline is not None:
            left = deadline - time.monotonic()
            if delay >= left:
                wait = "retry-after" if failure.retry_after is not None else "backoff"
                raise failure.error(
                    f"{failure.message} (not retried: {wait} {delay:g}s exceeds the "
                    f"{max(0.0, left):.1f}s left)"
                )
        return delay

    def _body(self, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]) -> bytes:
        """The request body, encoded once for every attempt; what cannot be sent is an
        `LLMError` (nothing is retried)."""
        try:
            return encode_payload(payload(self.model, self.extra_body, messages, tools))
        except ValueError as exc:
            detail = self._scrub(str(exc))[:_EXCERPT]
            raise LLMError(f"request to {self._where} cannot be encoded: {detail}") from None

    def _excerpt(self, text: str) -> str:
        """At most `_EXCERPT` characters of `text`, whitespace collapsed, secrets masked."""
        return self._scrub(" ".join(text[: _EXCERPT * 10].split()))[:_EXCERPT]

    def _scrub(self, text: str) -> str:
        """`text` with the key, URL credentials and secret-looking strings masked."""
        secrets = (self._api_key, self._password, self._user)
        for secret, shortest in zip(secrets, (1, 3, 8), strict=True):  # a user name may be a token
            value = secret.get_secret_value() if secret is not None else ""
            if len(value) >= shortest:
                text = text.replace(value, MASK)
        return redact_text(mask_userinfo(text))

    def _parse(self, answer: httpx.Response) -> LLMResponse:
        try:
            got = parse_completion(answer.content)
        except MalformedCompletion as exc:
            detail = self._scrub(str(exc))[:_EXCERPT]
            raise LLMResponseError(
                f"not a chat completion from {self._where} ({detail}): {self._excerpt(answer.text)}"
            ) from None
        prompt, completion = got.prompt_tokens, got.completion_tokens
        cost = (prompt * self.prompt_cost_per_1k + completion * self.completion_cost_per_1k) / 1000
        if not math.isfinite(cost):
            raise LLMResponseError(f"usage from {self._where} costs more than can be counted")
        return LLMResponse(
            content=got.content,
            tool_calls=got.tool_calls,
            usage=Usage(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost),
            model=got.model or self.model,
            finish_reason=got.finish_reason,
        )


def split_userinfo(url: str) -> tuple[str, str | None]:
    """(`url` without its `user:password@`, the userinfo or None)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends, default=len(rest))
    info, at, host = rest[:end].rpartition("@")
    if not at:
        return url, None
    return f"{scheme}://{host}{rest[end:]}", info


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")


def mask_userinfo(text: str) -> str:
    """`text` with the credentials of every URL in it (`scheme://user:pw@`) masked."""
    return _USERINFO.sub(rf"\1{MASK}@", text) if "@" in text else text
