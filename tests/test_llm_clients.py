"""The LLM clients: ScriptedLLM, ChaosLLM's fault kinds, and OpenAICompatibleLLM against a real
HTTP server on 127.0.0.1 (tests/llm_server.py)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from actors.llm import (
    FAULT_KINDS,
    ChaosLLM,
    LLMError,
    LLMMessage,
    LLMRateLimitError,
    LLMResponse,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    OpenAICompatibleLLM,
    ScriptedLLM,
    ToolCall,
    ToolSchema,
    Usage,
    parse_retry_after,
)
from actors.llm._chaos import _PHANTOM_TOOLS
from tests.llm_server import Canned, FakeOpenAIServer, completion

KEY = "sk-test-SECRET-0123456789"
WEATHER = ToolSchema(
    name="get_weather",
    description="Weather for a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
        },
        "required": ["city", "days"],
    },
)
DELETE = ToolSchema(
    name="delete_record",
    parameters={
        "type": "object",
        "properties": {"action": {"type": "string"}, "target": {"type": "string"}},
        "required": ["action", "target"],
    },
)


def user(text: str) -> LLMMessage:
    return LLMMessage(role="user", content=text)


def outcome(
    llm: ChaosLLM, messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]
) -> tuple[str, str]:
    """(the fault injected or "none", what the call returned or raised)."""
    before = llm.injected.copy()
    try:
        result = llm.complete(messages, tools).model_dump_json()
    except LLMError as exc:
        result = f"{type(exc).__name__}: {exc}"
    kinds = list((llm.injected - before).elements())
    return (kinds[0] if kinds else "none", result)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


# ScriptedLLM ------------------------------------------------------------------------------


def test_scripted_list_replies_in_order_then_repeats_the_last() -> None:
    llm = ScriptedLLM(["one", {"content": "two"}, "three"])
    answers = [llm.complete([user(f"q{i}")]).content for i in range(5)]
    assert answers == ["one", "two", "three", "three", "three"]
    assert [messages[0].content for messages, _ in llm.calls] == ["q0", "q1", "q2", "q3", "q4"]
    assert llm.call_count == 5
    assert llm.remaining == 0


def test_scripted_exhaustion_raises_when_not_repeating() -> None:
    llm = ScriptedLLM(["only"], repeat_last=False)
    assert llm.complete([user("a")]).content == "only"
    with pytest.raises(LLMError, match="ran out of replies"):
        llm.complete([user("b")])
    with pytest.raises(LLMError):
        ScriptedLLM([]).complete([user("c")])
    assert llm.call_count == 2


def test_scripted_function_sees_messages_and_tools() -> None:
    def reply(messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]) -> Any:
        return f"{messages[-1].content} with {[t.name for t in tools]}"

    llm = ScriptedLLM(reply)
    assert llm.complete([user("hi")], [WEATHER]).content == "hi with ['get_weather']"
    assert llm.calls == [((user("hi"),), (WEATHER,))]
    assert llm.remaining is None


def test_scripted_exceptions_are_raised_and_recorded() -> None:
    boom = LLMTimeoutError("too slow")
    llm = ScriptedLLM([boom, "fine"])
    with pytest.raises(LLMTimeoutError, match="too slow"):
        llm.complete([user("a")])
    assert llm.complete([user("b")]).content == "fine"
    failing = ScriptedLLM(lambda messages, tools: ValueError("from function"))
    with pytest.raises(ValueError, match="from function"):
        failing.complete([user("c")])
    assert len(llm.calls) == 2
    assert len(failing.calls) == 1


def test_scripted_tool_calls_and_response_passthrough() -> None:
    given = LLMResponse(content="as is", usage=Usage(prompt_tokens=1), model="m")
    llm = ScriptedLLM(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}]},
            {"content": None, "tool_calls": [ToolCall(id="x", name="t", arguments="{bad")]},
            given,
        ]
    )
    first = llm.complete([user("weather?")], [WEATHER])
    assert first.content is None
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == (
        ToolCall(id="call_1_0", name="get_weather", arguments={"city": "Oslo", "days": 2}),
    )
    assert llm.complete([user("again")]).tool_calls[0].arguments == "{bad"
    assert llm.complete([user("third")]) is given


def test_scripted_usage_is_estimated_or_given() -> None:
    llm = ScriptedLLM(
        ["x" * 40, {"content": "y", "usage": {"prompt_tokens": 100, "completion_tokens": 50}}],
        cost_per_1k_tokens=2.0,
    )
    estimated = llm.complete([user("a" * 80), LLMMessage(role="system", content="b" * 5)])
    assert estimated.usage.prompt_tokens == 20 + 2
    assert estimated.usage.completion_tokens == 10
    assert estimated.usage.cost_usd == pytest.approx(32 / 1000 * 2.0)
    stated = llm.complete([user("a")]).usage
    assert (stated.prompt_tokens, stated.completion_tokens) == (100, 50)
    assert stated.cost_usd == pytest.approx(0.3)


def test_scripted_rejects_malformed_replies_up_front() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        ScriptedLLM([{"contents": "typo"}])
    with pytest.raises(ValueError, match="needs a name"):
        ScriptedLLM([{"tool_calls": [{"arguments": {}}]}])
    with pytest.raises(TypeError):
        ScriptedLLM([42])  # type: ignore[list-item]


def test_scripted_async_and_shared_between_threads() -> None:
    llm = ScriptedLLM([f"r{i}" for i in range(200)], repeat_last=False)
    assert asyncio.run(llm.acomplete([user("async")])).content == "r0"
    seen: list[str] = []
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(33):
            content = llm.complete([user("t")]).content or ""
            with guard:
                seen.append(content)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"r{i}" for i in range(1, 199))
    assert llm.call_count == 199


# ChaosLLM ---------------------------------------------------------------------------------


def test_chaos_without_rates_is_a_transparent_pass_through() -> None:
    for rates in (None, dict.fromkeys(FAULT_KINDS, 0.0)):
        inner = ScriptedLLM(["a", {"tool_calls": [{"name": "get_weather", "arguments": {}}]}])
        chaos = ChaosLLM(inner, rates=rates, seed=7)
        reference = ScriptedLLM(["a", {"tool_calls": [{"name": "get_weather", "arguments": {}}]}])
        for i in range(20):
            messages = [user(f"q{i}")]
            assert chaos.complete(messages, [WEATHER]) == reference.complete(messages, [WEATHER])
        assert inner.calls == reference.calls
        assert sum(chaos.injected.values()) == 0
        assert chaos.call_count == 20


def test_chaos_validates_rates() -> None:
    inner = ScriptedLLM(["x"])
    with pytest.raises(ValueError, match="unknown fault kinds"):
        ChaosLLM(inner, rates={"meteor": 0.1})
    with pytest.raises(ValueError, match="sum"):
        ChaosLLM(inner, rates={"hang": 0.6, "slow": 0.6})
    with pytest.raises(ValueError):
        ChaosLLM(inner, rates={"hang": -0.1})


def test_chaos_slow_delays_then_delegates() -> None:
    inner = ScriptedLLM(["real answer"])
    chaos = ChaosLLM(inner, rates={"slow": 1.0}, slow_seconds=0.001)
    assert chaos.complete([user("q")]).content == "real answer"
    assert asyncio.run(chaos.acomplete([user("q")])).content == "real answer"
    assert chaos.injected == {"slow": 2}
    assert inner.call_count == 2


def test_chaos_hang_blocks_until_released() -> None:
    inner = ScriptedLLM(["never"])
    chaos = ChaosLLM(inner, rates={"hang": 1.0})
    errors: list[BaseException] = []

    def call() -> None:
        try:
            chaos.complete([user("q")], timeout=0.01)  # a hang ignores the client timeout
        except LLMError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert chaos.wait_hanging(1, timeout=10)
    assert thread.is_alive()
    chaos.release()
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], LLMTimeoutError)
    assert chaos.hanging == 0
    assert inner.call_count == 0
    with pytest.raises(LLMTimeoutError, match="released"):  # released stays released
        chaos.complete([user("again")])
    chaos.rearm()
    with pytest.raises(LLMTimeoutError, match="no answer after"):
        ChaosLLM(inner, rates={"hang": 1.0}, hang_seconds=0.01).complete([user("q")])


def test_chaos_async_hang_is_cancellable_and_releasable() -> None:
    chaos = ChaosLLM(ScriptedLLM(["never"]), rates={"hang": 1.0})

    async def main() -> None:
        task = asyncio.create_task(chaos.acomplete([user("q")]))
        assert await asyncio.to_thread(chaos.wait_hanging, 1, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert chaos.hanging == 0
        task = asyncio.create_task(chaos.acomplete([user("q")]))
        assert await asyncio.to_thread(chaos.wait_hanging, 1, 10)
        await asyncio.to_thread(chaos.release)  # from another thread, as a test harness would
        with pytest.raises(LLMTimeoutError, match="released"):
            await task

    asyncio.run(main())
    assert chaos.injected == {"hang": 2}


def test_chaos_invalid_json() -> None:
    inner = ScriptedLLM(['{"fine": true}'])
    chaos = ChaosLLM(inner, rates={"invalid_json": 1.0}, seed=3)
    for i in range(20):
        reply = chaos.complete([user(f"q{i}")], [WEATHER])
        assert reply.tool_calls == ()
        assert reply.content
        with pytest.raises(ValueError):
            json.loads(reply.content)
    assert chaos.injected == {"invalid_json": 20}
    assert inner.call_count == 0


def test_chaos_hallucinated_tool_is_never_an_offered_one() -> None:
    offered = [WEATHER, *(ToolSchema(name=name) for name in _PHANTOM_TOOLS)]
    chaos = ChaosLLM(ScriptedLLM(["x"]), rates={"hallucinated_tool": 1.0}, seed=1)
    for i in range(20):
        reply = chaos.complete([user(f"q{i}")], offered)
        assert len(reply.tool_calls) == 1
        assert reply.tool_calls[0].name not in {t.name for t in offered}
    assert chaos.injected == {"hallucinated_tool": 20}


def schema_violations(tool: ToolSchema, arguments: dict[str, Any] | str) -> list[str]:
    """Just enough JSON-schema checking for the chaos tests."""
    assert isinstance(arguments, dict)
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
    }
    props = tool.parameters["properties"]
    problems = [f"missing {f}" for f in tool.parameters["required"] if f not in arguments]
    for name, value in arguments.items():
        spec = props.get(name, {})
        expected = kinds[spec["type"]] if "type" in spec else object
        if not isinstance(value, expected) or (spec.get("type") != "boolean" and value is True):
            problems.append(f"{name} has the wrong type")
        elif "enum" in spec and value not in spec["enum"]:
            problems.append(f"{name} not in enum")
    return problems


def test_chaos_invalid_parameters_break_the_offered_tool_schema() -> None:
    for seed in range(15):
        chaos = ChaosLLM(ScriptedLLM(["x"]), rates={"invalid_parameters": 1.0}, seed=seed)
        reply = chaos.complete([user("q")], [WEATHER, DELETE])
        (call,) = reply.tool_calls
        tool = WEATHER if call.name == WEATHER.name else DELETE
        assert call.name in {WEATHER.name, DELETE.name}
        assert schema_violations(tool, call.arguments), call.arguments
    bare = ChaosLLM(ScriptedLLM(["x"]), rates={"invalid_parameters": 1.0})
    (call,) = bare.complete([user("q")]).tool_calls
    assert call.arguments == {"action": "delete", "target": None}


def test_chaos_endless_loop_repeats_the_previous_tool_call_for_the_whole_conversation() -> None:
    seed = next(s for s in range(1000) if random.Random(s).random() < 0.3)
    draws = random.Random(seed)
    assert any(draws.random() >= 0.3 for _ in range(10)), "later draws alone would not loop"
    inner = ScriptedLLM(["done"])
    chaos = ChaosLLM(inner, rates={"endless_loop": 0.3}, seed=seed)
    previous = ToolCall(id="c0", name="get_weather", arguments={"city": "Oslo", "days": 1})
    conversation = [
        user("weather?"),
        LLMMessage(role="assistant", tool_calls=(previous,)),
        LLMMessage(role="tool", tool_call_id="c0", content="rain"),
    ]
    ids = set()
    for _ in range(10):
        reply = chaos.complete(conversation, [WEATHER])
        (call,) = reply.tool_calls
        assert (call.name, call.arguments) == (previous.name, previous.arguments)
        ids.add(call.id)
        conversation += [
            LLMMessage(role="assistant", tool_calls=reply.tool_calls),
            LLMMessage(role="tool", tool_call_id=call.id, content="rain"),
        ]
    assert len(ids) == 10  # fresh ids, same call
    assert chaos.injected == {"endless_loop": 10}
    assert inner.call_count == 0


def test_chaos_endless_loop_without_history_locks_onto_the_first_reply() -> None:
    first = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome", "days": 3}}]}
    inner = ScriptedLLM([first, "would have finished"])
    chaos = ChaosLLM(inner, rates={"endless_loop": 1.0})
    conversation = [LLMMessage(role="system", content="be brief"), user("weather in Rome?")]
    replies = []
    for _ in range(4):
        reply = asyncio.run(chaos.acomplete(conversation, [WEATHER]))
        replies.append(reply)
        conversation = [*conversation, LLMMessage(role="assistant", tool_calls=reply.tool_calls)]
    assert {(r.tool_calls[0].name, json.dumps(r.tool_calls[0].arguments)) for r in replies} == {
        ("get_weather", json.dumps({"city": "Rome", "days": 3}))
    }
    assert inner.call_count == 1
    other = chaos.complete([user("another conversation")], [WEATHER])
    assert (other.content, other.tool_calls) == ("would have finished", ())  # its own loop
    assert chaos.complete([user("another conversation")]).content == "would have finished"
    assert inner.call_count == 2
    assert chaos.injected == {"endless_loop": 6}


def test_chaos_exception() -> None:
    inner = ScriptedLLM(["x"])
    chaos = ChaosLLM(inner, rates={"exception": 1.0})
    with pytest.raises(LLMError, match="injected"):
        chaos.complete([user("q")])
    with pytest.raises(LLMError):
        asyncio.run(chaos.acomplete([user("q")]))
    assert chaos.injected == {"exception": 2}
    assert inner.call_count == 0


def test_chaos_is_reproducible_from_its_seed() -> None:
    rates = {
        "invalid_json": 0.1,
        "hallucinated_tool": 0.1,
        "invalid_parameters": 0.15,
        "endless_loop": 0.1,
        "exception": 0.15,
    }

    def run(seed: int) -> list[tuple[str, str]]:
        chaos = ChaosLLM(ScriptedLLM(["fine"]), rates=rates, seed=seed)
        return [outcome(chaos, [user(f"q{i}")], [WEATHER, DELETE]) for i in range(60)]

    first = run(42)
    assert first == run(42)
    assert first != run(43)
    assert {kind for kind, _ in first} == {"none", *rates}  # a mix of faults and answers


def test_chaos_delegates_to_sync_only_and_async_only_clients() -> None:
    class SyncOnly:
        def complete(
            self,
            messages: Sequence[LLMMessage],
            tools: Sequence[ToolSchema] = (),
            *,
            timeout: float | None = None,
        ) -> LLMResponse:
            return LLMResponse(content=f"sync:{threading.current_thread() is main}")

    class AsyncOnly:
        async def acomplete(
            self,
            messages: Sequence[LLMMessage],
            tools: Sequence[ToolSchema] = (),
            *,
            timeout: float | None = None,
        ) -> LLMResponse:
            return LLMResponse(content="async")

    main = threading.current_thread()
    assert asyncio.run(ChaosLLM(SyncOnly()).acomplete([user("q")])).content == "sync:False"
    assert asyncio.run(ChaosLLM(AsyncOnly()).acomplete([user("q")])).content == "async"
    with pytest.raises(TypeError, match="no complete"):
        ChaosLLM(AsyncOnly()).complete([user("q")])


# OpenAICompatibleLLM against the local server ---------------------------------------------


def client(server: FakeOpenAIServer, **options: Any) -> OpenAICompatibleLLM:
    options.setdefault("sleep", lambda seconds: None)
    return OpenAICompatibleLLM(base_url=server.base_url, model="m-1", api_key=KEY, **options)


def test_http_success(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(body=completion("hello", prompt_tokens=1000, completion_tokens=500)))
    with client(server, prompt_cost_per_1k=0.01, completion_cost_per_1k=0.02) as llm:
        reply = llm.complete([LLMMessage(role="system", content="sys"), user("hi")])
    assert reply.content == "hello"
    assert reply.usage == Usage(prompt_tokens=1000, completion_tokens=500, cost_usd=0.02)
    assert (reply.model, reply.finish_reason) == ("test-model", "stop")
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json == {
        "model": "m-1",
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
    }


def test_http_tool_calls_round_trip_in_openai_wire_format(server: FakeOpenAIServer) -> None:
    server.enqueue(
        Canned(
            body=completion(
                None,
                tool_calls=[
                    {"id": "call_a", "name": "get_weather", "arguments": {"city": "Oslo"}},
                    {"id": "call_b", "name": "get_weather", "arguments": '{"city": "Osl'},
                ],
            )
        )
    )
    earlier = ToolCall(id="call_0", name="get_weather", arguments={"city": "Bergen", "days": 1})
    conversation = [
        user("weather?"),
        LLMMessage(role="assistant", content=None, tool_calls=(earlier,)),
        LLMMessage(role="tool", tool_call_id="call_0", name="get_weather", content="rain"),
    ]
    with client(server, extra_body={"temperature": 0}) as llm:
        reply = llm.complete(conversation, [WEATHER])
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls == (
        ToolCall(id="call_a", name="get_weather", arguments={"city": "Oslo"}),
        ToolCall(id="call_b", name="get_weather", arguments='{"city": "Osl'),
    )
    sent = server.requests[0].json
    assert sent["temperature"] == 0
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Bergen", "days": 1}',
                    },
                }
            ],
        },
        {"role": "tool", "content": "rain", "tool_call_id": "call_0"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]


def test_http_429_with_retry_after_then_success(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(status=429, body={"error": "slow down"}, headers={"Retry-After": "7"}))
    server.enqueue(Canned(body=completion("after the wait")))
    waits: list[float] = []
    with client(server, sleep=waits.append, max_retry_after=60) as llm:
        assert llm.complete([user("q")]).content == "after the wait"
    assert len(server.requests) == 2
    assert waits == [7.0]


def test_http_retry_after_date_is_capped(server: FakeOpenAIServer) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    server.enqueue(Canned(status=429, headers={"Retry-After": later}), Canned())
    waits: list[float] = []
    with client(server, sleep=waits.append, max_retry_after=0.5) as llm:
        assert llm.complete([user("q")]).content == "ok"
    assert waits == [0.5]


def test_http_500_then_success_uses_backoff(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(status=500, body="oops"), Canned(status=503, body="busy"), Canned())
    waits: list[float] = []
    with client(server, sleep=waits.append, backoff_base=0.25, jitter=False) as llm:
        assert llm.complete([user("q")]).content == "ok"
    assert len(server.requests) == 3
    assert waits == [0.25, 0.5]


def test_http_500_every_time_raises_server_error(server: FakeOpenAIServer) -> None:
    server.default = Canned(status=500, body={"error": {"message": "down"}})
    with client(server, max_retries=2) as llm, pytest.raises(LLMServerError) as raised:
        llm.complete([user("q")])
    assert len(server.requests) == 3
    assert "HTTP 500" in str(raised.value)
    assert "down" in str(raised.value)


def test_http_429_every_time_raises_rate_limit_error(server: FakeOpenAIServer) -> None:
    server.default = Canned(status=429, body="", headers={"Retry-After": "0"})
    with client(server, max_retries=1) as llm, pytest.raises(LLMRateLimitError):
        llm.complete([user("q")])
    assert len(server.requests) == 2


def test_http_timeout(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(hang=True))
    with client(server, timeout=0.2) as llm, pytest.raises(LLMTimeoutError) as raised:
        llm.complete([user("q")])
    assert server.client_disconnected.wait(10)
    assert len(server.requests) == 1  # timeouts are not retried
    assert KEY not in str(raised.value)


def test_http_call_timeout_is_a_budget(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(hang=True))
    with client(server, timeout=30) as llm, pytest.raises(LLMTimeoutError):
        llm.complete([user("q")], timeout=0.2)
    assert server.client_disconnected.wait(10)


@pytest.mark.parametrize(
    "body",
    [
        "this is not json",
        {"choices": []},
        {"id": "x"},
        {"choices": [{"message": "not an object"}]},
        {"choices": [{"message": {"content": 5}}]},
        {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {}}]}}]},
        [1, 2, 3],
    ],
)
def test_http_malformed_body_raises_response_error(server: FakeOpenAIServer, body: Any) -> None:
    server.enqueue(Canned(body=body))
    with client(server) as llm, pytest.raises(LLMResponseError):
        llm.complete([user("q")])
    assert len(server.requests) == 1


def test_http_other_4xx_is_not_retried_and_never_shows_the_key(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(status=401, body={"error": f"Incorrect API key provided: {KEY}"}))
    with client(server) as llm, pytest.raises(LLMError) as raised:
        llm.complete([user("q")])
    message = str(raised.value)
    assert type(raised.value) is LLMError
    assert "HTTP 401" in message
    assert "Incorrect API key" in message
    assert KEY not in message
    assert KEY not in repr(llm)
    assert len(server.requests) == 1


def test_http_connection_refused_is_retried_then_raised() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waits: list[float] = []
    llm = OpenAICompatibleLLM(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=2, sleep=waits.append
    )
    with llm, pytest.raises(LLMError, match="connection failed") as raised:
        llm.complete([user("q")])
    assert len(waits) == 2
    assert KEY not in str(raised.value)


def test_http_settings_fall_back_to_the_environment(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("OPENAI_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAICompatibleLLM() as llm:
        llm.complete([user("q")])
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.json["model"] == "env-model"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    default = OpenAICompatibleLLM()
    assert default.url == "https://api.openai.com/v1/chat/completions"
    assert "api_key=unset" in repr(default)


def test_parse_retry_after() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5", "retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "Mon, 01 Jan 2024 12:00:30 GMT"}, now) == 30.0
    assert parse_retry_after({"retry-after": "Mon, 01 Jan 2024 11:00:00 GMT"}, now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({}) is None


def test_http_async_success_and_retry(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(status=502, body="bad gateway"), Canned(body=completion("async ok")))
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> LLMResponse:
        async with client(server, async_sleep=record, jitter=False, backoff_base=0.1) as llm:
            return await llm.acomplete([user("q")], [WEATHER])

    reply = asyncio.run(main())
    assert reply.content == "async ok"
    assert waits == [0.1]
    assert len(server.requests) == 2
    assert server.requests[1].headers["authorization"] == f"Bearer {KEY}"
    assert server.requests[1].json["tools"][0]["function"]["name"] == "get_weather"


def test_http_async_timeout(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(hang=True))

    async def main() -> None:
        async with client(server, timeout=0.2) as llm:
            with pytest.raises(LLMTimeoutError):
                await llm.acomplete([user("q")])

    asyncio.run(main())
    assert server.client_disconnected.wait(10)


def test_http_async_cancellation_closes_the_request(server: FakeOpenAIServer) -> None:
    server.enqueue(Canned(hang=True))

    async def main() -> None:
        async with client(server, timeout=30) as llm:
            task = asyncio.create_task(llm.acomplete([user("q")]))
            assert await asyncio.to_thread(server.wait_for_requests, 1, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The server notices the hang-up while the client (and its pool) is still open.
            assert await asyncio.to_thread(server.client_disconnected.wait, 10)
            assert (await llm.acomplete([user("next")])).content == "ok"

    asyncio.run(main())
    assert len(server.requests) == 2


def test_http_async_client_from_another_loop_is_private_and_closed(
    server: FakeOpenAIServer,
) -> None:
    llm = client(server)

    async def call() -> str | None:
        return (await llm.acomplete([user("q")])).content

    async def owner() -> None:
        assert await call() == "ok"
        assert await asyncio.to_thread(asyncio.run, call()) == "ok"  # a second loop
        await llm.aclose()

    asyncio.run(owner())
    assert len(server.requests) == 2
