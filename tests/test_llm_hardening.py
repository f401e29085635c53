"""Hostile provider answers and model outputs: every malformed answer is a typed LLM error
(never an exception out of the agent), tool arguments are real JSON (no NaN/Infinity), usage
cannot disable budgets, the agent gives its client the time left before its deadline, repeated
invalid answers are INVALID_OUTPUT, and URL credentials never show."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from actors import Budget, ExecutionStatus, FailureReason, LLMAgent, Tool, ToolGuard
from actors._conversation import usage_problem
from actors._loops import LoopDetector
from actors.llm import (
    LLMError,
    LLMMessage,
    LLMRateLimitError,
    LLMResponse,
    LLMResponseError,
    LLMServerError,
    OpenAICompatibleLLM,
    ScriptedLLM,
    ToolCall,
    ToolSchema,
    Usage,
)
from supervisor import ChildSpec, FakeClock, Supervisor, start
from supervisor.testing import capture_events
from tests.agents import Human
from tests.llm_agents import ANSWER, Ticket, ToolLog, desk_class
from tests.llm_server import Canned, FakeOpenAIServer, completion, raw_json

KEY = "sk-test-SECRET-0123456789"
PASSWORD = "hunter2-PASSWORD"
TICKET = Ticket(id=1, text="where is my order?")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


def client(server: FakeOpenAIServer, **options: Any) -> OpenAICompatibleLLM:
    options.setdefault("sleep", lambda seconds: None)
    return OpenAICompatibleLLM(base_url=server.base_url, model="m-1", api_key=KEY, **options)


def user(text: str) -> LLMMessage:
    return LLMMessage(role="user", content=text)


class FakeContext:
    """What an LLMAgent reads from its context, with the time left before the deadline."""

    path = "root/desk"
    agent_id = "desk"
    trace_id = "t-hardening"
    fallback_reason = None

    def __init__(self, time_left: float | None) -> None:
        self.time_left = time_left


class OldContext:
    """A context from before `time_left` existed."""

    path = "root/desk"
    agent_id = "desk"
    trace_id = None
    fallback_reason = None


def direct(cls: type[LLMAgent], llm: Any, context: Any) -> LLMAgent:
    agent = cls(llm)
    agent.attach_context(context)
    agent.on_start()
    return agent


def answer_with(tool_call: dict[str, Any]) -> dict[str, Any]:
    """A completion body template with one tool call (`"<<...>>"` markers for raw_json)."""
    body = completion(None)
    body["choices"][0]["message"]["tool_calls"] = [
        {"id": "c1", "type": "function", "function": tool_call}
    ]
    return body


DEEP = 100_000
MALFORMED = {
    "deep_body": raw_json({"choices": "<<deep>>"}, deep="[" * DEEP + "]" * DEEP),
    "deep_arguments_text": json.dumps(
        answer_with({"name": "lookup_order", "arguments": '{"a":' * DEEP + "1" + "}" * DEEP})
    ),
    "deep_arguments_object": raw_json(
        answer_with({"name": "lookup_order", "arguments": "<<deep>>"}),
        deep='{"a":' * 200 + "1" + "}" * 200,
    ),
    "prompt_tokens_1e400": raw_json(
        {**completion(ANSWER), "usage": {"prompt_tokens": "<<n>>", "completion_tokens": 1}},
        n="1e400",
    ),
    "prompt_tokens_nan": raw_json(
        {**completion(ANSWER), "usage": {"prompt_tokens": "<<n>>"}}, n="NaN"
    ),
    "prompt_tokens_negative": json.dumps(
        {**completion(ANSWER), "usage": {"prompt_tokens": -(10**9), "completion_tokens": 1}}
    ),
    "completion_tokens_fractional": json.dumps(
        {**completion(ANSWER), "usage": {"prompt_tokens": 1, "completion_tokens": 2.5}}
    ),
    "prompt_tokens_string": json.dumps({**completion(ANSWER), "usage": {"prompt_tokens": "12"}}),
    "prompt_tokens_huge": json.dumps({**completion(ANSWER), "usage": {"prompt_tokens": 10**300}}),
    "surrogate_tool_name": raw_json(
        answer_with({"name": "<<name>>", "arguments": "{}"}), name='"lookup\\ud800"'
    ),
    "surrogate_content": raw_json(completion("<<text>>"), text='"hi \\udfff"'),
    "surrogate_in_arguments": raw_json(
        answer_with({"name": "lookup_order", "arguments": "<<args>>"}),
        args='"{\\"order_id\\": \\"\\\\ud800\\"}"',
    ),
    "tool_call_id_not_text": json.dumps(
        answer_with({"name": "lookup_order", "arguments": "{}"})
    ).replace('"id": "c1"', '"id": [[1]]'),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_http_malformed_answers_are_response_errors(server: FakeOpenAIServer, kind: str) -> None:
    server.default = Canned(body=MALFORMED[kind])
    with client(server) as llm, pytest.raises(LLMResponseError) as raised:
        llm.complete([user("q")])
    assert "not a chat completion" in str(raised.value)
    assert KEY not in str(raised.value)
    assert len(server.requests) == 1  # not retried

    async def main() -> None:
        async with client(server) as allm:
            with pytest.raises(LLMResponseError):
                await allm.acomplete([user("q")])

    asyncio.run(main())
    assert len(server.requests) == 2


@pytest.mark.parametrize("kind", ["deep_body", "prompt_tokens_1e400", "surrogate_tool_name"])
@pytest.mark.parametrize("use_async", [False, True])
def test_malformed_answers_are_llm_error_results_not_crashes(
    server: FakeOpenAIServer, kind: str, use_async: bool
) -> None:
    server.enqueue(Canned(body=MALFORMED[kind]))
    llm = client(server)
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("desk", desk_class(ToolLog(), use_async=use_async), kwargs={"llm": llm})
        ],
    )
    try:
        with start(tree) as system:
            result = system.ask("root/desk", TICKET.model_dump(), timeout=10.0)
            health = system.health().actors["root/desk"]
    finally:
        llm.close()
    assert result.status is ExecutionStatus.FAILURE
    assert result.reason is FailureReason.LLM_ERROR
    assert "LLMResponseError" in (result.error or "")
    assert health.restarts == 0


def test_http_nan_tool_arguments_reach_the_guard_as_text_and_are_refused(
    server: FakeOpenAIServer,
) -> None:
    body = answer_with({"name": "lookup_order", "arguments": '{"order_id": NaN}'})
    server.enqueue(Canned(body=body), Canned(body=completion(ANSWER)))
    log = ToolLog()
    with client(server) as llm, capture_events() as events:
        agent = direct(desk_class(log), llm, FakeContext(None))
        result = agent.handle(TICKET)
    assert result.status is ExecutionStatus.SUCCESS
    assert log.calls == []
    (refused,) = events.matching("tool_call_refused")
    assert refused["kind"] == "bad_arguments"
    assert "NaN is not a JSON number" in refused["reason"]
    sent = server.requests[1].json["messages"][-1]
    assert sent["role"] == "tool"
    assert "NaN" in json.loads(sent["content"])["error"]


# Tool arguments: real JSON only -----------------------------------------------------------


class PayArgs(BaseModel):
    amount: float
    target: str = "acct-1"


def pay_guard(paid: list[BaseModel]) -> ToolGuard:
    return ToolGuard(
        [Tool("pay", paid.append, PayArgs, dangerous=lambda a: a.amount > 100, on_dangerous="deny")]
    )


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ('{"amount": NaN}', "NaN is not a JSON number"),
        ('{"amount": Infinity}', "Infinity is not a JSON number"),
        ('{"amount": -Infinity}', "-Infinity is not a JSON number"),
        ('{"amount": 1e400}', "out of range"),
        ({"amount": float("nan")}, "not a finite number"),
        ({"amount": float("inf")}, "not a finite number"),
        ({"amount": "NaN"}, "not a finite number"),  # pydantic would coerce it to nan
        ('{"amount": "-inf"}', "not a finite number"),
    ],
)
def test_guard_refuses_non_finite_numbers(arguments: Any, fragment: str) -> None:
    paid: list[BaseModel] = []
    verdict = pay_guard(paid).check(ToolCall(id="c", name="pay", arguments=arguments))
    assert verdict.kind == "bad_arguments"  # type: ignore[union-attr]
    assert fragment in verdict.reason  # type: ignore[union-attr]
    assert paid == []


def test_guard_still_decides_on_finite_numbers() -> None:
    guard = pay_guard([])
    assert type(guard.check(ToolCall(id="c", name="pay", arguments='{"amount": 5}'))).__name__ == (
        "Approved"
    )
    denied = guard.check(ToolCall(id="c", name="pay", arguments='{"amount": 500.5}'))
    assert denied.kind == "denied"  # type: ignore[union-attr]


def test_guard_refuses_when_the_danger_predicate_raises() -> None:
    def undecidable(args: Any) -> bool:
        raise ArithmeticError("cannot compare")

    guard = ToolGuard([Tool("pay", lambda a: a, PayArgs, dangerous=undecidable)])
    verdict = guard.check(ToolCall(id="c", name="pay", arguments={"amount": 1}))
    assert verdict.kind == "denied"  # type: ignore[union-attr]
    assert "could not tell" in verdict.reason  # type: ignore[union-attr]


def test_agent_never_executes_a_nan_amount_that_dodges_the_danger_check() -> None:
    paid: list[PayArgs] = []
    pay = Tool("pay", paid.append, PayArgs, dangerous=lambda a: a.amount > 100, on_dangerous="deny")
    cls = type("Payer", (LLMAgent,), {"tools": (pay,), "use_async": False})
    llm = ScriptedLLM([{"tool_calls": [{"name": "pay", "arguments": '{"amount": NaN}'}]}, "done"])
    with capture_events() as events:
        result = direct(cls, llm, FakeContext(None)).handle("pay them")
    assert result.status is ExecutionStatus.SUCCESS
    assert paid == []
    assert events.matching("tool_call_refused")[0]["kind"] == "bad_arguments"


# Usage cannot disable budgets -------------------------------------------------------------


def test_usage_refuses_negative_and_non_finite_figures() -> None:
    for fields in (
        {"prompt_tokens": -(10**9)},
        {"completion_tokens": -1},
        {"prompt_tokens": 1.5},
        {"cost_usd": -0.5},
        {"cost_usd": float("nan")},
        {"cost_usd": float("inf")},
    ):
        with pytest.raises(ValidationError):
            Usage.model_validate(fields)
    with pytest.raises(ValueError):
        ScriptedLLM([{"content": "x", "usage": {"prompt_tokens": -(10**9)}}])


def test_unvalidated_negative_usage_is_an_llm_error_and_not_charged() -> None:
    bad = LLMResponse(
        content=ANSWER, usage=Usage.model_construct(prompt_tokens=-(10**9), completion_tokens=0)
    )
    assert usage_problem(bad.usage) is not None
    agent = direct(
        desk_class(ToolLog(), budget=Budget(tokens_per_message=10)),
        ScriptedLLM([bad]),
        FakeContext(None),
    )
    result = agent.handle(TICKET)
    assert result.reason is FailureReason.LLM_ERROR
    assert "malformed usage" in (result.error or "")
    assert agent.ledger.totals(60).tokens == 0


# The time left before the deadline reaches the client -------------------------------------


class RecordingLLM:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def complete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        self.timeouts.append(timeout)
        return LLMResponse(content=ANSWER)

    async def acomplete(
        self,
        messages: Sequence[LLMMessage],
        tools: Sequence[ToolSchema] = (),
        *,
        timeout: float | None = None,
    ) -> LLMResponse:
        return self.complete(messages, tools, timeout=timeout)


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize(
    ("context", "llm_timeout", "expected"),
    [
        (FakeContext(2.0), None, 1.8),  # 10 % of the time left stays for the fallback
        (FakeContext(2.0), 30.0, 1.8),
        (FakeContext(2.0), 0.5, 0.5),
        (FakeContext(0.2), None, 0.15),  # at least 50 ms
        (FakeContext(60.0), None, 59.0),  # at most 1 s
        (FakeContext(None), 7.0, 7.0),
        (FakeContext(None), None, None),
        (OldContext(), 7.0, 7.0),
    ],
)
def test_each_model_call_gets_at_most_the_time_left(
    context: Any, llm_timeout: float | None, expected: float | None, use_async: bool
) -> None:
    llm = RecordingLLM()
    cls = desk_class(ToolLog(), llm_timeout=llm_timeout, use_async=use_async)
    agent = direct(cls, llm, context)
    outcome = agent.handle(TICKET)
    result = asyncio.run(outcome) if use_async else outcome
    assert result.status is ExecutionStatus.SUCCESS
    assert llm.timeouts == ([pytest.approx(expected)] if expected is not None else [None])


def test_no_time_left_is_an_llm_timeout_without_calling_the_model() -> None:
    llm = RecordingLLM()
    result = direct(desk_class(ToolLog()), llm, FakeContext(0.0)).handle(TICKET)
    assert result.status is ExecutionStatus.TIMEOUT
    assert result.reason is FailureReason.LLM_TIMEOUT
    assert llm.timeouts == []


def test_http_retry_after_longer_than_the_call_timeout_gives_up_at_once(
    server: FakeOpenAIServer,
) -> None:
    server.default = Canned(status=429, body="slow down", headers={"Retry-After": "10"})
    waits: list[float] = []
    with client(server, sleep=waits.append) as llm, pytest.raises(LLMRateLimitError) as raised:
        llm.complete([user("q")], timeout=2.0)
    assert waits == []
    assert len(server.requests) == 1
    assert "retry-after 10s exceeds the" in str(raised.value)
    assert "s left" in str(raised.value)


def test_http_async_backoff_longer_than_the_call_timeout_gives_up_at_once(
    server: FakeOpenAIServer,
) -> None:
    server.default = Canned(status=503, body="busy")
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        async with client(server, async_sleep=record, backoff_base=5.0, jitter=False) as llm:
            with pytest.raises(LLMServerError, match="backoff 5s exceeds the"):
                await llm.acomplete([user("q")], timeout=2.0)

    asyncio.run(main())
    assert waits == []
    assert len(server.requests) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_agent_under_a_deadline_does_not_wait_out_a_long_retry_after(
    server: FakeOpenAIServer, use_async: bool
) -> None:
    server.default = Canned(status=429, body="slow down", headers={"Retry-After": "10"})
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    llm = client(server, sleep=waits.append, async_sleep=record)
    agent = direct(desk_class(ToolLog(), use_async=use_async), llm, FakeContext(2.0))

    async def run_async() -> Any:
        try:
            return await agent.handle(TICKET)
        finally:
            await llm.aclose()

    if use_async:
        result = asyncio.run(run_async())
    else:
        with llm:
            result = agent.handle(TICKET)
    assert result.reason is FailureReason.LLM_ERROR
    assert "LLMRateLimitError" in result.error
    assert "retry-after 10s exceeds" in result.error
    assert waits == []
    assert len(server.requests) == 1


# Repeated invalid answers are INVALID_OUTPUT ----------------------------------------------


def test_the_same_invalid_answer_three_times_is_invalid_output() -> None:
    llm = ScriptedLLM(['{"action": "explode"}'])
    result = direct(desk_class(ToolLog()), llm, FakeContext(None)).handle(TICKET)
    assert result.status is ExecutionStatus.INVALID_OUTPUT
    assert result.reason is FailureReason.INVALID_OUTPUT
    assert "after 3 attempts" in (result.error or "")
    assert llm.call_count == 3


def test_loop_detector_counts_tool_steps_not_final_answers() -> None:
    detector = LoopDetector(threshold=2)
    answer = LLMResponse(content="same")
    assert [detector.output(answer) for _ in range(5)] == [None] * 5
    step = LLMResponse(tool_calls=(ToolCall(id="a", name="t", arguments={"x": 1}),))
    assert detector.output(step) is None
    assert "reasoning loop" in (detector.output(step) or "")
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"a": deep}
    assert detector.tool_call(ToolCall(id="d", name="t", arguments=deep)) is None  # no crash


# URL credentials never show ---------------------------------------------------------------


def test_url_credentials_are_not_in_the_repr_or_url() -> None:
    llm = OpenAICompatibleLLM(base_url=f"postgres://admin:{PASSWORD}@db.internal:5432/v1")
    shown = repr(llm)
    assert PASSWORD not in shown
    assert "admin" not in shown
    assert "postgres://***@db.internal:5432/v1/chat/completions" in shown
    assert llm.url == "postgres://db.internal:5432/v1/chat/completions"
    plain = OpenAICompatibleLLM(base_url="https://example.test/v1")
    assert "url='https://example.test/v1/chat/completions'" in repr(plain)


def test_url_credentials_are_not_in_connection_errors() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for base in (
        f"postgres://admin:{PASSWORD}@db.internal/v1",
        f"http://admin:{PASSWORD}@127.0.0.1:{port}/v1",
    ):
        llm = OpenAICompatibleLLM(base_url=base, max_retries=1, sleep=lambda s: None)
        with llm, pytest.raises(LLMError, match="connection failed") as raised:
            llm.complete([user("q")])
        assert PASSWORD not in str(raised.value)
        assert "admin" not in str(raised.value)


def test_url_credentials_are_sent_as_basic_auth_and_never_echoed(
    server: FakeOpenAIServer,
) -> None:
    base = server.base_url.replace("http://", f"http://admin:{PASSWORD}@")
    server.enqueue(Canned(), Canned(status=400, body={"error": f"bad request to {base}"}))
    with OpenAICompatibleLLM(base_url=base, model="m") as llm:
        assert llm.complete([user("q")]).content == "ok"
        with pytest.raises(LLMError) as raised:
            llm.complete([user("q")])
    expected = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    assert server.requests[0].headers["authorization"] == f"Basic {expected}"
    assert server.requests[0].path == "/v1/chat/completions"
    assert "HTTP 400" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert "admin:" not in str(raised.value)


def test_under_a_system_the_fallback_answers_at_once_instead_of_after_the_deadline(
    server: FakeOpenAIServer,
) -> None:
    """The issue's scenario: a 429 with Retry-After 10 under a 2 s message deadline. The
    agent passes the 2 s left to the client, which gives up at once; the fallback answers
    with the typed llm_error, not after the deadline."""
    server.default = Canned(status=429, body="slow down", headers={"Retry-After": "10"})
    waits: list[float] = []
    llm = client(server, sleep=waits.append)
    spec = ChildSpec(
        "desk", desk_class(ToolLog()), kwargs={"llm": llm}, message_timeout=2.0, fallback=Human
    )
    try:
        with start(Supervisor("root", children=[spec]), clock=FakeClock()) as system:
            result = system.ask("root/desk", TICKET.model_dump(), timeout=10.0)
    finally:
        llm.close()
    assert result.fallback_used
    assert result.reason is FailureReason.LLM_ERROR
    assert waits == []
    assert len(server.requests) == 1


def test_deeply_nested_scripted_arguments_are_refused_not_a_crash() -> None:
    deep: dict[str, Any] = {"order_id": 1}
    for _ in range(5000):
        deep = {"a": deep}
    text = '{"a":' * DEEP + "1" + "}" * DEEP
    llm = ScriptedLLM(
        [
            {"tool_calls": [{"name": "lookup_order", "arguments": text}]},
            {"tool_calls": [{"name": "lookup_order", "arguments": deep}]},
            ANSWER,
        ]
    )
    log = ToolLog()
    with capture_events() as events:
        result = direct(desk_class(log), llm, FakeContext(None)).handle(TICKET)
    assert result.status is ExecutionStatus.SUCCESS
    assert log.calls == []
    reasons = [e["reason"] for e in events.matching("tool_call_refused")]
    assert reasons == [
        "arguments are nested too deeply",
        "arguments are not valid JSON: nested deeper than 64 levels",
    ]
