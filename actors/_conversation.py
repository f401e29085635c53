"""One message through the seed's reliable stack, as a sans-IO state machine:

    validated input -> guardrails -> LLM -> tool guard -> tool -> ... -> output validation
    -> retry with the errors (clarify) -> answer

The generator yields what it needs done (an LLM call, a tool run) and is sent the outcome;
it returns an ExecutionResult. A sync driver and an async driver run the same machine, so the
logic exists once and both kinds of clients get identical behaviour.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ._budget import Budget, BudgetLedger, MessageSpend, exceeded
from ._events import emit
from ._loops import LoopDetector
from ._result import ExecutionResult, ExecutionStatus, FailureReason
from ._states import AgentState, StateTracker
from ._tools import Approved, ToolGuard
from .llm._types import LLMError, LLMMessage, LLMResponse, LLMTimeoutError, ToolSchema, Usage

if TYPE_CHECKING:
    from ._context import AgentContext

__all__ = ["CallLLM", "Limits", "RunTool", "Step", "converse"]


@dataclass(frozen=True, slots=True)
class CallLLM:
    messages: tuple[LLMMessage, ...]
    tools: tuple[ToolSchema, ...]


@dataclass(frozen=True, slots=True)
class RunTool:
    approved: Approved


Step = CallLLM | RunTool


@dataclass(frozen=True, slots=True)
class Limits:
    max_steps: int
    output_attempts: int
    max_tool_refusals: int
    loop_threshold: int
    budget: Budget | None
    output_model: type[BaseModel] | None


def parse_output(content: str | None, model: type[BaseModel] | None) -> Any:
    """The model's final answer, validated; raises ValueError/ValidationError when invalid."""
    if model is None:
        if content is None:
            msg = "the model returned no content"
            raise ValueError(msg)
        return content
    text = (content or "").strip()
    if text.startswith("```"):
        text = text.strip("`")
        text = text.split("\n", 1)[1] if "\n" in text else text
        text = text.removeprefix("json").strip()
    return model.model_validate_json(text)


def _errors_text(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def usage_problem(usage: Usage) -> str | None:
    """Why reported usage cannot be charged (a negative, fractional or non-finite figure would
    corrupt or disable the budgets), or None. `Usage` validates this; a response built without
    validation (`model_construct`) is checked here too."""
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"usage.{name} is not a non-negative whole number: {value!r:.40}"
    cost = usage.cost_usd
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost):
        return f"usage.cost_usd is not a finite number: {cost!r:.40}"
    if cost < 0:
        return "usage.cost_usd is negative"
    return None


def _event(ctx: AgentContext | None, event: str, level: str = "info", **fields: Any) -> None:
    emit(
        event,
        level=level,
        path=ctx.path if ctx else None,
        agent_id=ctx.agent_id if ctx else None,
        trace_id=ctx.trace_id if ctx else None,
        **fields,
    )


class _Conversation:
    """Per-message state of the machine: the transcript, spending, loop and refusal counts."""

    def __init__(
        self,
        messages: list[LLMMessage],
        guard: ToolGuard,
        limits: Limits,
        states: StateTracker,
        ledger: BudgetLedger,
        ctx: AgentContext | None,
        check: Callable[[Any], str | None],
    ) -> None:
        self.messages = messages
        self.guard = guard
        self.limits = limits
        self.states = states
        self.ledger = ledger
        self.ctx = ctx
        self.check = check
        self.spend = MessageSpend()
        self.loops = LoopDetector(limits.loop_threshold)
        self.refusals = 0
        self.invalid_outputs = 0

    def fail(self, status: ExecutionStatus, reason: FailureReason, error: str) -> ExecutionResult:
        timed_out = status is ExecutionStatus.TIMEOUT
        self.states.to(AgentState.TIMEOUT if timed_out else AgentState.FAILED, error)
        return ExecutionResult(status=status, reason=reason, error=error)

    def over_budget(self, message: MessageSpend) -> tuple[FailureReason, str] | None:
        budget = self.limits.budget
        if budget is None:
            return None
        return exceeded(budget, message, self.ledger.totals(budget.window_seconds))

    def run(self) -> Generator[Step, Any, ExecutionResult]:
        tools = tuple(self.guard.schemas)
        while True:
            self.states.to(AgentState.PROCESSING)
            if self.spend.steps >= self.limits.max_steps:
                return self.fail(
                    ExecutionStatus.FAILURE,
                    FailureReason.STEP_LIMIT,
                    f"step limit: {self.limits.max_steps} model calls without a final answer",
                )
            over = self.over_budget(MessageSpend())
            if over is not None:
                return self.fail(
                    ExecutionStatus.FAILURE, over[0], f"{over[1]} (before calling the model)"
                )
            try:
                response: LLMResponse = yield CallLLM(tuple(self.messages), tools)
            except LLMTimeoutError as exc:
                return self.fail(
                    ExecutionStatus.TIMEOUT, FailureReason.LLM_TIMEOUT, f"LLM timeout: {exc}"
                )
            except LLMError as exc:
                error = f"LLM error: {type(exc).__name__}: {exc}"
                return self.fail(ExecutionStatus.FAILURE, FailureReason.LLM_ERROR, error)
            ended = self.account(response)
            if ended is None and response.tool_calls:
                ended = yield from self.tool_round(response)
                if ended is None:
                    continue
            if ended is not None:
                return ended
            answer = self.validate(response)
            if isinstance(answer, ExecutionResult):
                return answer
            if answer is _RETRY:
                continue
            self.states.to(AgentState.COMPLETED)
            return ExecutionResult(status=ExecutionStatus.SUCCESS, data=answer)

    def account(self, response: LLMResponse) -> ExecutionResult | None:
        """Charge the call to the budgets and look for a repeated output."""
        usage = response.usage
        malformed = usage_problem(usage)
        if malformed is not None:
            error = f"LLM error: malformed usage from the client: {malformed}"
            return self.fail(ExecutionStatus.FAILURE, FailureReason.LLM_ERROR, error)
        self.spend.steps += 1
        self.spend.tokens += usage.total_tokens
        self.spend.cost += usage.cost_usd
        self.ledger.charge(usage.total_tokens, usage.cost_usd, 1)
        over = self.over_budget(self.spend)
        if over is not None:
            return self.fail(ExecutionStatus.FAILURE, over[0], over[1])
        looping = self.loops.output(response)
        if looping is not None:
            return self.fail(ExecutionStatus.FAILURE, FailureReason.REASONING_LOOP, looping)
        return None

    def tool_round(self, response: LLMResponse) -> Generator[Step, Any, ExecutionResult | None]:
        """Check every proposed call; run the approved ones; report refusals to the model."""
        self.messages.append(
            LLMMessage(role="assistant", content=response.content, tool_calls=response.tool_calls)
        )
        for call in response.tool_calls:
            verdict = self.guard.check(call)
            if not isinstance(verdict, Approved):
                self.refusals += 1
                _event(
                    self.ctx,
                    "tool_call_refused",
                    "warning",
                    tool=call.name,
                    kind=verdict.kind,
                    reason=verdict.reason,
                    refusals=self.refusals,
                )
                self.tool_message(call.id, call.name, {"error": verdict.reason})
                if self.refusals > self.limits.max_tool_refusals:
                    error = f"{self.refusals} tool calls refused; last: {verdict.reason}"
                    return self.fail(ExecutionStatus.FAILURE, FailureReason.TOOL_REFUSED, error)
                continue
            looping = self.loops.tool_call(call)
            if looping is not None:
                return self.fail(ExecutionStatus.FAILURE, FailureReason.REASONING_LOOP, looping)
            self.states.to(AgentState.AWAITING_TOOL, call.name)
            try:
                output = yield RunTool(verdict)
            except Exception as exc:  # noqa: BLE001 - a tool failure ends the message cleanly
                failure = f"{type(exc).__name__}: {exc}"
                _event(self.ctx, "tool_call_failed", "warning", tool=call.name, reason=failure)
                error = f"tool {call.name} failed: {failure}"
                return self.fail(ExecutionStatus.FAILURE, FailureReason.TOOL_FAILED, error)
            _event(
                self.ctx,
                "tool_call_executed",
                tool=call.name,
                arguments=verdict.args.model_dump(mode="json"),
            )
            self.tool_message(call.id, call.name, output)
        return None

    def tool_message(self, call_id: str, name: str, content: Any) -> None:
        self.messages.append(
            LLMMessage(
                role="tool",
                tool_call_id=call_id,
                name=name,
                content=json.dumps(content, default=str),
            )
        )

    def validate(self, response: LLMResponse) -> Any:
        """The validated answer, _RETRY after asking again, or the final INVALID_OUTPUT."""
        self.states.to(AgentState.VALIDATING)
        try:
            answer = parse_output(response.content, self.limits.output_model)
            problem = self.check(answer)
            if problem is not None:
                raise ValueError(problem)
        except (ValidationError, ValueError) as exc:
            self.invalid_outputs += 1
            detail = _errors_text(exc)
            if self.invalid_outputs >= self.limits.output_attempts:
                error = f"output invalid after {self.invalid_outputs} attempts: {detail}"
                return self.fail(
                    ExecutionStatus.INVALID_OUTPUT, FailureReason.INVALID_OUTPUT, error
                )
            self.states.to(AgentState.RETRYING, detail)
            self.messages.append(LLMMessage(role="assistant", content=response.content))
            self.messages.append(
                LLMMessage(
                    role="user",
                    content=(
                        "Your answer did not match the required format. Errors: "
                        f"{detail}. Reply again with only a JSON object that matches the schema."
                    ),
                )
            )
            return _RETRY
        return answer


_RETRY = object()


def converse(
    messages: list[LLMMessage],
    guard: ToolGuard,
    limits: Limits,
    states: StateTracker,
    ledger: BudgetLedger,
    ctx: AgentContext | None,
    check: Callable[[Any], str | None] = lambda _: None,
) -> Generator[Step, Any, ExecutionResult]:
    """Run one message. The driver sends back an LLMResponse for CallLLM (or throws the
    client's LLMError into the generator), and the tool's return value for RunTool (or
    throws its exception). check(answer) adds business rules to the output model: a string
    it returns is treated like a validation error (the model is asked again)."""
    return _Conversation(messages, guard, limits, states, ledger, ctx, check).run()


@functools.cache
def output_instructions(model: type[BaseModel] | None) -> str:
    """The format instructions for an output model (its JSON schema), made once per model."""
    if model is None:
        return ""
    schema = json.dumps(model.model_json_schema(), sort_keys=True)
    return f"Answer with only a JSON object matching this JSON schema: {schema}"


def first_messages(
    system_prompt: str, output_model: type[BaseModel] | None, user: str
) -> list[LLMMessage]:
    parts = [p for p in (system_prompt, output_instructions(output_model)) if p]
    out: list[LLMMessage] = []
    if parts:
        out.append(LLMMessage(role="system", content="\n\n".join(parts)))
    out.append(LLMMessage(role="user", content=user))
    return out
