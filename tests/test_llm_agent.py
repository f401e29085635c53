"""The reliable agent: every layer of the seed's stack, each refusal, loop, budget and state."""

from __future__ import annotations

import json
from typing import Any

import pytest

from actors import AgentState, Budget, BudgetLedger, ExecutionStatus, FailureReason
from actors.llm import ChaosLLM, LLMError, LLMTimeoutError, ScriptedLLM
from strategies import BreakerPolicy
from supervisor import ChildSpec, FakeClock, Supervisor, start
from supervisor.testing import capture_events, wait_until
from tests.agents import Human
from tests.llm_agents import ANSWER, Decision, ManageArgs, ToolLog, call, desk_class

TICKET = {"id": 1, "text": "where is my order?"}


def run(agent_cls: type, llm: Any, message: Any = TICKET, **spec: Any) -> Any:
    tree = Supervisor("root", children=[ChildSpec("desk", agent_cls, kwargs={"llm": llm}, **spec)])
    with capture_events() as events, start(tree) as system:
        result = system.ask("root/desk", message, timeout=10.0)
        health = system.health().actors["root/desk"]
    return result, events, health


def test_happy_path_validates_and_returns_the_output_model():
    log = ToolLog()
    llm = ScriptedLLM([call("lookup_order", order_id=5), ANSWER])
    result, events, health = run(desk_class(log), llm)
    assert result.status is ExecutionStatus.SUCCESS
    assert result.data == Decision(action="respond", reply="on its way")
    assert [name for name, _ in log.calls] == ["lookup_order"]
    sent = llm.calls[1][0]
    assert sent[-1].role == "tool"
    assert json.loads(sent[-1].content) == {"order_id": 5, "status": "shipped"}
    assert sent[0].role == "system"
    assert "JSON schema" in (sent[0].content or "")
    executed = events.matching("tool_call_executed")
    assert executed[0]["tool"] == "lookup_order"
    assert executed[0]["path"] == "root/desk"
    assert health.agent_state == "completed"


def test_invalid_input_is_answered_with_the_validation_errors_and_never_reaches_the_model():
    llm = ScriptedLLM([ANSWER])
    result, _, health = run(desk_class(ToolLog()), llm, {"id": "seven", "text": ""})
    assert result.status is ExecutionStatus.INVALID_INPUT
    assert result.reason is FailureReason.INVALID_INPUT
    assert "id" in result.error
    assert "text" in result.error
    assert llm.calls == []
    assert health.restarts == 0


def test_guard_input_refuses_before_the_model():
    cls = desk_class(ToolLog())
    cls.guard_input = lambda self, m: "out of scope" if "bitcoin" in m.text else None  # type: ignore[method-assign]
    llm = ScriptedLLM([ANSWER])
    result, _, _ = run(cls, llm, {"id": 2, "text": "buy bitcoin for me"})
    assert result.status is ExecutionStatus.INVALID_INPUT
    assert result.error.endswith("out of scope")
    assert llm.calls == []


def test_invalid_output_is_retried_with_the_errors_then_succeeds():
    llm = ScriptedLLM(['{"action": "explode"}', "not json at all", ANSWER])
    result, events, _ = run(desk_class(ToolLog(), output_attempts=3), llm)
    assert result.status is ExecutionStatus.SUCCESS
    clarification = llm.calls[1][0][-1]
    assert clarification.role == "user"
    assert "action" in (clarification.content or "")
    states = [e["new"] for e in events.matching("agent_state_changed")]
    assert states == [
        "processing",
        "validating",
        "retrying",
        "processing",
        "validating",
        "retrying",
        "processing",
        "validating",
        "completed",
    ]


def test_output_still_invalid_after_the_attempts_is_invalid_output_and_a_breaker_failure():
    llm = ScriptedLLM(['{"action": "explode"}'])
    tree = Supervisor(
        "root",
        children=[
            ChildSpec(
                "desk",
                desk_class(ToolLog(), output_attempts=2),
                kwargs={"llm": llm},
                breaker=BreakerPolicy(fail_max=1, reset_timeout=60),
            )
        ],
    )
    with start(tree, clock=FakeClock()) as system:
        result = system.ask("root/desk", TICKET, timeout=10.0)
        assert result.status is ExecutionStatus.INVALID_OUTPUT
        assert result.reason is FailureReason.INVALID_OUTPUT
        assert "after 2 attempts" in result.error
        assert system.health().actors["root/desk"].breaker.state == "open"  # type: ignore[union-attr]
        assert system.health().actors["root/desk"].agent_state == "failed"


def test_check_output_business_rules_are_enforced():
    cls = desk_class(ToolLog())
    cls.check_output = lambda self, d: (
        "close_ticket needs a reply" if d.action == "close_ticket" and not d.reply else None
    )  # type: ignore[method-assign]
    llm = ScriptedLLM(['{"action": "close_ticket"}', '{"action": "close_ticket", "reply": "done"}'])
    result, _, _ = run(cls, llm)
    assert result.data.reply == "done"
    assert "needs a reply" in (llm.calls[1][0][-1].content or "")


@pytest.mark.parametrize(
    ("bad_call", "kind", "fragment"),
    [
        (
            {"name": "drop_database", "arguments": {}},
            "unknown_tool",
            "unknown tool 'drop_database'",
        ),
        ({"name": "lookup_order", "arguments": {"order_id": "abc"}}, "bad_arguments", "order_id"),
        (
            {"name": "lookup_order", "arguments": '{"order_id": 5'},
            "bad_arguments",
            "not valid JSON",
        ),
        (
            {"name": "manage_ticket", "arguments": {"action": "delete", "target": None}},
            "missing_target",
            "non-empty target",
        ),
        (
            {"name": "manage_ticket", "arguments": {"action": "nuke", "target": "t1"}},
            "bad_arguments",
            "action",
        ),
    ],
)
def test_each_guardrail_refusal_is_never_executed_and_the_model_can_correct(
    bad_call, kind, fragment
):
    log = ToolLog()
    llm = ScriptedLLM([{"tool_calls": [bad_call]}, call("lookup_order", order_id=5), ANSWER])
    result, events, _ = run(desk_class(log), llm)
    assert result.status is ExecutionStatus.SUCCESS
    assert [name for name, _ in log.calls] == ["lookup_order"]
    refused = events.matching("tool_call_refused")
    assert len(refused) == 1
    assert refused[0]["kind"] == kind
    assert fragment in refused[0]["reason"]
    feedback = llm.calls[1][0][-1]
    assert feedback.role == "tool"
    assert fragment in json.loads(feedback.content)["error"]


def test_the_seeds_delete_without_target_is_refused_every_time_and_ends_with_tool_refused():
    log = ToolLog()
    llm = ScriptedLLM([call("manage_ticket", action="delete", target=None)])
    result, _, _ = run(desk_class(log, max_tool_refusals=2, loop_threshold=10), llm)
    assert result.status is ExecutionStatus.FAILURE
    assert result.reason is FailureReason.TOOL_REFUSED
    assert log.calls == []


@pytest.mark.parametrize(
    ("policy", "confirm", "executed"),
    [
        ("deny", None, False),
        ("confirm", None, False),
        ("confirm", lambda n, a: False, False),
        ("confirm", lambda n, a: a.target == "T-1", True),
        ("allow", None, True),
    ],
)
def test_dangerous_action_policies(policy, confirm, executed):
    log = ToolLog()
    llm = ScriptedLLM([call("manage_ticket", action="delete", target="T-1"), ANSWER])
    result, _, _ = run(desk_class(log, on_dangerous=policy, confirm=confirm), llm)
    assert result.status is ExecutionStatus.SUCCESS
    assert bool(log.calls) is executed


def test_a_failing_tool_ends_the_message_cleanly_and_the_fallback_answers():
    llm = ScriptedLLM([call("lookup_order", order_id=13)])
    result, events, health = run(desk_class(ToolLog()), llm, fallback=Human)
    assert result.fallback_used
    assert result.reason is FailureReason.TOOL_FAILED
    assert health.restarts == 0
    assert events.matching("tool_call_failed")[0]["reason"] == "RuntimeError: order service down"


def test_repeated_identical_tool_calls_are_a_reasoning_loop():
    log = ToolLog()
    llm = ScriptedLLM([call("lookup_order", order_id=5)])  # repeats forever
    result, _, _ = run(desk_class(log, loop_threshold=3, max_steps=50), llm)
    assert result.status is ExecutionStatus.FAILURE
    assert result.reason is FailureReason.REASONING_LOOP
    assert len(log.calls) == 2  # the third identical call was not executed


def test_repeated_identical_tool_calling_outputs_are_a_reasoning_loop():
    llm = ScriptedLLM([call("drop_database")])  # the same refused call, again and again
    cls = desk_class(ToolLog(), loop_threshold=2, max_tool_refusals=10, max_steps=20)
    result, _, _ = run(cls, llm)
    assert result.reason is FailureReason.REASONING_LOOP
    assert llm.call_count == 2


def test_repeated_identical_invalid_answers_are_invalid_output_not_a_loop():
    llm = ScriptedLLM(['{"action": "explode"}'])
    cls = desk_class(ToolLog(), loop_threshold=2, output_attempts=10, max_steps=20)
    result, _, _ = run(cls, llm)
    assert result.status is ExecutionStatus.INVALID_OUTPUT
    assert result.reason is FailureReason.INVALID_OUTPUT
    assert "after 10 attempts" in result.error
    assert llm.call_count == 10


def test_step_limit_ends_a_conversation_that_never_answers():
    replies = [call("lookup_order", order_id=i) for i in range(100)]
    result, _, _ = run(desk_class(ToolLog(), max_steps=4), ScriptedLLM(replies))
    assert result.status is ExecutionStatus.FAILURE
    assert result.reason is FailureReason.STEP_LIMIT


@pytest.mark.parametrize(
    ("budget", "reason"),
    [
        (Budget(tokens_per_message=10), FailureReason.BUDGET_TOKENS),
        (Budget(cost_per_message=0.001), FailureReason.BUDGET_COST),
        (Budget(steps_per_message=1), FailureReason.BUDGET_STEPS),
    ],
)
def test_per_message_budgets(budget, reason):
    llm = ScriptedLLM([call("lookup_order", order_id=5), ANSWER], cost_per_1k_tokens=1.0)
    result, _, _ = run(desk_class(ToolLog(), budget=budget), llm)
    assert result.status is ExecutionStatus.FAILURE
    assert result.reason is reason
    assert "budget exceeded" in result.error


@pytest.mark.parametrize(
    ("budget", "reason"),
    [
        (Budget(tokens_per_window=400, window_seconds=60), FailureReason.BUDGET_TOKENS),
        (Budget(cost_per_window=0.4, window_seconds=60), FailureReason.BUDGET_COST),
        (Budget(steps_per_window=3, window_seconds=60), FailureReason.BUDGET_STEPS),
    ],
)
def test_per_window_budgets_span_messages_and_reset_when_the_window_passes(budget, reason):
    now = [0.0]
    ledger = BudgetLedger(clock=lambda: now[0])
    llm = ScriptedLLM(
        [
            {
                "content": ANSWER,
                "usage": {"prompt_tokens": 100, "completion_tokens": 50, "cost_usd": 0.15},
            }
        ]
    )
    cls = desk_class(ToolLog(), budget=budget)
    tree = Supervisor(
        "root", children=[ChildSpec("desk", cls, kwargs={"llm": llm, "ledger": ledger})]
    )
    with start(tree) as system:
        statuses = [system.ask("root/desk", TICKET, timeout=10.0) for _ in range(5)]
        assert statuses[0].status is ExecutionStatus.SUCCESS
        failed = [r for r in statuses if r.status is ExecutionStatus.FAILURE]
        assert failed
        assert failed[0].reason is reason
        calls_before = len(llm.calls)
        assert system.ask("root/desk", TICKET, timeout=10.0).status is ExecutionStatus.FAILURE
        assert len(llm.calls) == calls_before  # refused before calling the model
        now[0] += 61
        assert system.ask("root/desk", TICKET, timeout=10.0).status is ExecutionStatus.SUCCESS


def test_llm_errors_are_typed_failures_not_crashes():
    result, _, health = run(desk_class(ToolLog()), ScriptedLLM([LLMError("503 from upstream")]))
    assert result.reason is FailureReason.LLM_ERROR
    assert health.restarts == 0
    result, _, health = run(desk_class(ToolLog()), ScriptedLLM([LLMTimeoutError("read timeout")]))
    assert result.status is ExecutionStatus.TIMEOUT
    assert result.reason is FailureReason.LLM_TIMEOUT
    assert health.agent_state == "timeout"


def test_every_state_is_reachable_and_each_transition_is_an_event():
    seen: set[str] = set()
    scripts = [
        [
            call("lookup_order", order_id=1),
            '{"action": "bad"}',
            ANSWER,
        ],  # awaiting_tool, retrying, completed
        [LLMTimeoutError("slow")],  # timeout
        [call("lookup_order", order_id=13)],  # failed
    ]
    for script in scripts:
        _, events, _ = run(desk_class(ToolLog()), ScriptedLLM(script))
        seen |= {e["new"] for e in events.matching("agent_state_changed")}
    assert seen | {"initializing"} == {s.value for s in AgentState}


def test_async_handler_with_an_async_client():
    llm = ScriptedLLM([call("lookup_order", order_id=5), ANSWER])
    result, _, health = run(desk_class(ToolLog(), use_async=True), llm)
    assert result.status is ExecutionStatus.SUCCESS
    assert health.agent_state == "completed"


def test_async_handler_overrunning_its_deadline_is_really_cancelled():
    chaos = ChaosLLM(ScriptedLLM([ANSWER]), rates={"hang": 1.0}, seed=1)
    clock = FakeClock()
    cls = desk_class(ToolLog(), use_async=True)
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("desk", cls, kwargs={"llm": chaos}, message_timeout=5.0, fallback=Human)
        ],
    )
    try:
        with capture_events() as events, start(tree, clock=clock) as system:
            pending = system.ask_future("root/desk", TICKET, timeout=60.0)
            events.wait_for("agent_state_changed", new="processing")
            clock.advance(6.0)
            result = pending.result()
            assert result.fallback_used
            assert result.reason is FailureReason.DEADLINE
            events.wait_for(
                "agent_state_changed", new="timeout"
            )  # the coroutine saw CancelledError
            events.wait_for("child_started", path="root/desk", count=2)
            # its thread is freed by the cancellation (not left running in the background)
            wait_until(lambda: system.health().actors["root/desk"].abandoned == 0)
    finally:
        chaos.release()


def test_tool_events_and_refusals_carry_the_trace():
    llm = ScriptedLLM([call("nope"), call("lookup_order", order_id=2), ANSWER])
    tree = Supervisor(
        "root", children=[ChildSpec("desk", desk_class(ToolLog()), kwargs={"llm": llm})]
    )
    with capture_events() as events, start(tree) as system:
        system.ask("root/desk", TICKET, timeout=10.0, trace_id="t-tools")
    assert events.matching("tool_call_refused")[0]["trace_id"] == "t-tools"
    assert events.matching("tool_call_executed")[0]["trace_id"] == "t-tools"


def test_manage_args_model_is_what_the_tool_receives():
    log = ToolLog()
    run(desk_class(log), ScriptedLLM([call("manage_ticket", action="close", target="T-9"), ANSWER]))
    assert log.calls == [("manage_ticket", ManageArgs(action="close", target="T-9"))]


def test_deadline_overrun_closes_the_real_http_request():
    """End to end: an LLMAgent on OpenAICompatibleLLM whose endpoint never answers; the model
    call gets the time left before the message deadline less the fallback's margin, so the
    request is closed before the deadline (the server sees the client go away) and the
    fallback answers in time."""
    from actors.llm import OpenAICompatibleLLM
    from tests.llm_server import Canned, FakeOpenAIServer

    with FakeOpenAIServer(default=Canned(hang=True)) as server:
        llm = OpenAICompatibleLLM(base_url=server.base_url, model="m", api_key="k", timeout=60.0)
        tree = Supervisor(
            "root",
            children=[
                ChildSpec(
                    "desk",
                    desk_class(ToolLog(), use_async=True),
                    kwargs={"llm": llm},
                    message_timeout=0.5,
                    fallback=Human,
                )
            ],
        )
        try:
            with start(tree) as system:
                result = system.ask("root/desk", TICKET, timeout=10.0)
                assert result.fallback_used
                assert result.reason is FailureReason.LLM_TIMEOUT
                assert server.client_disconnected.wait(10.0)
        finally:
            server.release()
            llm.close()
