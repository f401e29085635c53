"""Per-message cost of the reliable-agent layer (validation, guardrails, states, budgets),
and of async handlers, against a bare handler, measured in one run.

Run: python -m bench.agent_layer     (env: N=5000 REPEATS=3)
Variants (each a hivekeeper ask round trip; the "model" is a ScriptedLLM that answers at once,
so the numbers are the layer's own cost, not an LLM's):
  bare handler            Agent.handle returns a dict
  bare async handler      async def handle (runs on the shared event loop)
  LLMAgent, answer        input model -> prompt -> model -> output validation
  LLMAgent, tool + answer one guarded tool call, then the answer (two model calls)
  LLMAgent async, answer  the same on the shared loop
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from pydantic import BaseModel

from actors import Agent, LLMAgent, ScriptedLLM, Tool
from bench._common import pct, quiet
from supervisor import ChildSpec, Supervisor, start

N = int(os.environ.get("N", "5000"))
REPEATS = int(os.environ.get("REPEATS", "3"))
ANSWER = '{"action": "respond", "reply": "ok"}'


class Ticket(BaseModel):
    id: int
    text: str


class Decision(BaseModel):
    action: str
    reply: str


class LookupArgs(BaseModel):
    order_id: int


class Bare(Agent):
    def handle(self, message: Any) -> Any:
        return {"action": "respond", "reply": "ok"}


class BareAsync(Agent):
    async def handle(self, message: Any) -> Any:
        return {"action": "respond", "reply": "ok"}


class Desk(LLMAgent):
    input_model = Ticket
    output_model = Decision
    tools = (Tool("lookup", lambda a: {"status": "shipped"}, LookupArgs),)
    use_async = False


class AsyncDesk(Desk):
    use_async = True


def with_tool(messages: Any, tools: Any) -> Any:
    if messages[-1].role == "tool":
        return ANSWER
    return {"tool_calls": [{"name": "lookup", "arguments": {"order_id": 1}}]}


def main() -> None:
    quiet()
    tree = Supervisor(
        "bench",
        children=[
            ChildSpec("bare", Bare),
            ChildSpec("bare_async", BareAsync),
            ChildSpec("llm", Desk, kwargs={"llm": ScriptedLLM([ANSWER])}),
            ChildSpec("llm_tool", Desk, kwargs={"llm": ScriptedLLM(with_tool)}),
            ChildSpec("llm_async", AsyncDesk, kwargs={"llm": ScriptedLLM([ANSWER])}),
        ],
    )
    names = {
        "bare handler": "bench/bare",
        "bare async handler": "bench/bare_async",
        "LLMAgent, answer": "bench/llm",
        "LLMAgent, tool + answer": "bench/llm_tool",
        "LLMAgent async, answer": "bench/llm_async",
    }
    message = {"id": 1, "text": "where is my order"}
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
    with start(tree) as system:
        for path in names.values():
            for _ in range(300):
                assert system.ask(path, message, timeout=5.0).ok
        for _ in range(REPEATS):
            for name, path in names.items():
                pc = time.perf_counter_ns
                out = []
                for _ in range(N):
                    t0 = pc()
                    system.ask(path, message, timeout=5.0)
                    out.append(pc() - t0)
                results[name].append((pct(out, 0.5) / 1e3, pct(out, 0.99) / 1e3))
    base = statistics.median(r[0] for r in results["bare handler"])
    print(f"agent layer per message (ask round trip), median of {REPEATS} x {N}")
    for name, runs in results.items():
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        print(
            f"  {name:26s} p50 {p50:7.1f} us  p99 {p99:7.1f} us   +{p50 - base:6.1f} us vs bare ({p50 / base:4.2f}x)"
        )


if __name__ == "__main__":
    main()
