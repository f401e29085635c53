"""LLMAgent: an Agent whose handle() is the seed's reliable stack around an LLM.

A user declares input_model / output_model (pydantic), the tools it may call, limits, and
gives it an LLM client; hivekeeper does validation, guardrails, tool-call checking, loop and
budget limits, explicit states, retries with the validation errors, and reports the outcome
as an ExecutionResult (INVALID_INPUT, INVALID_OUTPUT, FAILURE with a FailureReason, ...).

    class Triage(LLMAgent):
        input_model = Ticket
        output_model = Decision
        tools = (Tool("lookup_order", lookup_order, LookupArgs),)
        system_prompt = "You triage customer tickets."

    ChildSpec("triage", Triage, kwargs={"llm": ScriptedLLM([...])})
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Generator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from ._agent import Agent
from ._budget import Budget, BudgetLedger
from ._conversation import CallLLM, Limits, RunTool, Step, converse, first_messages
from ._result import ExecutionResult, ExecutionStatus, FailureReason
from ._states import AgentState, StateTracker
from ._tools import Tool, ToolGuard
from .llm._types import LLMError, LLMTimeoutError

__all__ = ["LLMAgent"]

# of the time left before a message's deadline, what a model call leaves for the fallback:
# 10 %, at least 50 ms, at most 1 s
_FALLBACK_SHARE = 0.1
_FALLBACK_MIN = 0.05
_FALLBACK_MAX = 1.0

Machine = Generator[Step, Any, ExecutionResult]


class LLMAgent(Agent):
    """Class attributes to set:
    input_model / output_model: pydantic models (output_model None: free text answers).
    tools: the allow-list of Tools. system_prompt: the instructions.
    max_steps: model calls per message (the loop guard). output_attempts: tries to get a
    valid answer. max_tool_refusals: refused tool calls tolerated per message.
    loop_threshold: identical tool calls / tool-calling outputs that make a loop (final
    answers are governed by output_attempts). budget: a Budget.
    llm_timeout: seconds per model call (None: the client's own). Each call is also given
    at most what is left of the message's deadline (`context.time_left`), so a client never
    waits (e.g. for a Retry-After) past it. use_async: run on the shared event loop (default:
    when the client has acomplete), so a deadline cancels it.
    """

    output_model: ClassVar[type[BaseModel] | None] = None
    tools: ClassVar[Sequence[Tool]] = ()
    system_prompt: ClassVar[str] = ""
    max_steps: ClassVar[int] = 8
    output_attempts: ClassVar[int] = 3
    max_tool_refusals: ClassVar[int] = 3
    loop_threshold: ClassVar[int] = 3
    budget: ClassVar[Budget | None] = None
    llm_timeout: ClassVar[float | None] = None
    use_async: ClassVar[bool | None] = None

    def __init__(self, llm: Any, *, ledger: BudgetLedger | None = None) -> None:
        if not (hasattr(llm, "complete") or hasattr(llm, "acomplete")):
            name = type(self).__name__
            msg = f"{name} needs an LLM client with complete() or acomplete(), got {llm!r}"
            raise TypeError(msg)
        self.llm = llm
        self.ledger = ledger or BudgetLedger()
        self._guard = ToolGuard(self.build_tools())
        self._states = StateTracker()
        self._limits = Limits(
            max_steps=self.max_steps,
            output_attempts=self.output_attempts,
            max_tool_refusals=self.max_tool_refusals,
            loop_threshold=self.loop_threshold,
            budget=self.budget,
            output_model=self.output_model,
        )
        wants_async = self.use_async if self.use_async is not None else hasattr(llm, "acomplete")
        self._async = wants_async and hasattr(llm, "acomplete")

    @property
    def state(self) -> AgentState:
        return self._states.state

    def on_start(self) -> None:
        self._states.context = self.context

    # -- hooks to override -----------------------------------------------------------------

    def build_tools(self) -> Sequence[Tool]:
        """The allow-list; override to make tools bound to this instance (e.g. tools that ask
        other agents through self.context)."""
        return self.tools

    def prompt(self, message: Any) -> str:
        """The user turn for a (validated) message."""
        if isinstance(message, BaseModel):
            return message.model_dump_json()
        if isinstance(message, str):
            return message
        return json.dumps(message, default=str)

    def guard_input(self, message: Any) -> str | None:
        """Input guardrails after validation: return a refusal reason to answer INVALID_INPUT
        without calling the model (e.g. out-of-scope requests, prompt-injection markers)."""
        return None

    def check_output(self, output: Any) -> str | None:
        """Business rules on a validated answer: return a problem to ask the model again."""
        return None

    # -- the message path ------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        refusal = self.guard_input(message)
        if refusal is not None:
            return ExecutionResult(
                status=ExecutionStatus.INVALID_INPUT,
                reason=FailureReason.INVALID_INPUT,
                error=refusal,
            )
        messages = first_messages(self.system_prompt, self.output_model, self.prompt(message))
        ctx = self._context
        machine = converse(
            messages, self._guard, self._limits, self._states, self.ledger, ctx, self.check_output
        )
        if self._async:
            return self._run_async(machine)
        return self._run_sync(machine)

    def call_timeout(self) -> float | None:
        """The timeout for the next model call: `llm_timeout`, bounded by what is left of the
        current message's deadline (None: neither is set). Raises LLMTimeoutError when the
        deadline has already passed."""
        left = getattr(self._context, "time_left", None)
        if isinstance(left, bool) or not isinstance(left, int | float):
            return self.llm_timeout
        if left <= 0:
            msg = "no time left before the message deadline to call the model"
            raise LLMTimeoutError(msg)
        # keep a margin, so that a model call that takes all of it still leaves the fallback
        # time to answer before the caller's deadline
        left -= min(max(left * _FALLBACK_SHARE, _FALLBACK_MIN), _FALLBACK_MAX)
        if left <= 0:
            msg = "too little time left before the message deadline to call the model"
            raise LLMTimeoutError(msg)
        return left if self.llm_timeout is None else min(self.llm_timeout, left)

    def _run_sync(self, machine: Machine) -> ExecutionResult:
        try:
            step = next(machine)
            while True:
                if isinstance(step, CallLLM):
                    try:
                        response = self.llm.complete(
                            step.messages, step.tools, timeout=self.call_timeout()
                        )
                    except LLMError as exc:
                        step = machine.throw(exc)
                        continue
                    step = machine.send(response)
                else:
                    step = self._tool_sync(machine, step)
        except StopIteration as done:
            result: ExecutionResult = done.value
            return result

    def _tool_sync(self, machine: Machine, step: RunTool) -> Step:
        approved = step.approved
        try:
            output = approved.tool.func(approved.args)
            if inspect.isawaitable(output):
                output = asyncio.run(_await(output))
        except Exception as exc:  # noqa: BLE001 - reported to the machine as a tool failure
            return machine.throw(exc)
        return machine.send(output)

    async def _run_async(self, machine: Machine) -> ExecutionResult:
        try:
            step = next(machine)
            while True:
                if isinstance(step, CallLLM):
                    try:
                        response = await self.llm.acomplete(
                            step.messages, step.tools, timeout=self.call_timeout()
                        )
                    except LLMError as exc:
                        step = machine.throw(exc)
                        continue
                    step = machine.send(response)
                else:
                    approved = step.approved
                    try:
                        if approved.tool.is_async:
                            output = await approved.tool.func(approved.args)
                        else:  # never block the shared loop with a sync tool
                            output = await asyncio.to_thread(approved.tool.func, approved.args)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - reported to the machine as a tool failure
                        step = machine.throw(exc)
                        continue
                    step = machine.send(output)
        except StopIteration as done:
            result: ExecutionResult = done.value
            return result
        except asyncio.CancelledError:
            if self._states.state not in (
                AgentState.COMPLETED,
                AgentState.FAILED,
                AgentState.TIMEOUT,
            ):
                self._states.to(AgentState.TIMEOUT, "cancelled at the message deadline")
            machine.close()
            raise


async def _await(awaitable: Any) -> Any:
    return await awaitable
