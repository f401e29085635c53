"""Property-based: arbitrary model outputs and tool arguments never execute an invalid tool
call and never crash the agent or its supervisor."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from actors import ExecutionStatus, LLMAgent, Tool, ToolGuard
from actors._tools import Approved
from actors.llm import ScriptedLLM, ToolCall
from supervisor import ChildSpec, Supervisor, start
from tests.llm_agents import Decision, LookupArgs, ManageArgs, Ticket

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
near_valid_manage = st.fixed_dictionaries(
    {"action": st.sampled_from(["close", "delete", "reply", "nuke", None, 5, ""])},
    optional={
        "target": st.one_of(
            st.none(), st.just(""), st.text(max_size=5), st.integers(), st.lists(st.text())
        ),
        "note": json_values,
    },
)
arguments = st.one_of(
    near_valid_manage,
    st.fixed_dictionaries({"order_id": st.one_of(st.integers(), st.text(max_size=5), st.none())}),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.text(max_size=30),  # raw, possibly invalid JSON
    json_values.map(json.dumps),
)
tool_names = st.one_of(st.sampled_from(["manage_ticket", "lookup_order"]), st.text(max_size=12))
tool_calls = st.builds(
    ToolCall, id=st.text(min_size=1, max_size=6), name=tool_names, arguments=arguments
)


class Violations:
    def __init__(self) -> None:
        self.found: list[str] = []
        self.executed = 0


def guarded_tools(v: Violations) -> tuple[Tool, ...]:
    def manage(args: Any) -> str:
        v.executed += 1
        if not isinstance(args, ManageArgs):
            v.found.append(f"unvalidated arguments {args!r}")
        elif args.action == "delete" and not args.target:
            v.found.append(f"delete without a target executed: {args!r}")
        return "ok"

    def lookup(args: Any) -> str:
        v.executed += 1
        if not isinstance(args, LookupArgs):
            v.found.append(f"unvalidated arguments {args!r}")
        return "ok"

    return (
        Tool(
            "manage_ticket",
            manage,
            ManageArgs,
            dangerous=lambda a: a.action == "delete",
            on_dangerous="allow",
        ),
        Tool("lookup_order", lookup, LookupArgs),
    )


@given(tool_calls)
@settings(max_examples=400)
def test_the_guard_never_approves_an_invalid_call(tc: ToolCall) -> None:
    v = Violations()
    guard = ToolGuard(guarded_tools(v))
    verdict = guard.check(tc)
    if isinstance(verdict, Approved):
        assert verdict.tool.name == tc.name
        assert isinstance(verdict.args, BaseModel)
        verdict.tool.func(verdict.args)
        assert v.found == []


replies = st.one_of(
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.builds(
        lambda a, r: json.dumps({"action": a, "reply": r}),
        st.sampled_from(["respond", "route_to_human", "close_ticket", "explode"]),
        st.text(max_size=10),
    ),
    st.lists(tool_calls, min_size=1, max_size=3).map(
        lambda calls: {"tool_calls": [c.model_dump() for c in calls]}
    ),
)


@given(st.lists(replies, min_size=1, max_size=12))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_model_outputs_never_execute_invalid_calls_or_crash_the_supervisor(
    script: list[Any],
) -> None:
    v = Violations()

    class Desk(LLMAgent):
        input_model = Ticket
        output_model = Decision
        tools = guarded_tools(v)
        use_async = False

    tree = Supervisor(
        "root", children=[ChildSpec("desk", Desk, kwargs={"llm": ScriptedLLM(script)})]
    )
    with start(tree) as system:
        for _ in range(3):
            result = system.ask("root/desk", {"id": 1, "text": "help"}, timeout=10.0)
            assert result.status in set(ExecutionStatus)
            if result.status is ExecutionStatus.SUCCESS:
                assert isinstance(result.data, Decision)
            else:
                assert result.error
                assert result.reason is not None
        health = system.health()
        assert health.actors["root/desk"].restarts == 0
        assert health.state == "running"
    assert v.found == []
