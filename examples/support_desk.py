"""A customer-support desk, built only from hivekeeper's public API.

    desk (one_for_one, 20 restarts / 10 s)
    ├── router        LLM agent: reads a ticket, transfers it to a specialist (a guarded tool
    │                 that asks the specialist), relays the specialist's decision
    ├── specialists   (one_for_one with restart backoff)
    │   ├── billing   LLM agent: track orders, refunds (refunds over 100 are denied by policy)
    │   └── shipping  LLM agent: track orders, manage tickets (delete needs a target)
    └── audit         plain agent that records every ticket; its "database" fails now and then
                      (let it crash: it is restarted while the others keep answering)

Every LLM agent has a circuit breaker, a message deadline and a rule-based fallback that
routes the ticket to a human (the seed article's CustomerSupportAgent fallback).

Offline (default) every agent talks to ChaosLLM(ScriptedLLM(brain)): a deterministic scripted
"model" wrapped in the seed's production failures (slow answers, hangs, invalid JSON,
hallucinated tools, invalid parameters, endless loops, exceptions). With OPENAI_BASE_URL /
OPENAI_API_KEY set (or `hivekeeper demo --online`), the same tree talks to a real
OpenAI-compatible endpoint.

    hivekeeper run hivekeeper_examples.support_desk:tree     # run it under the live tree view
    hivekeeper demo                               # stream tickets through it (see demo.py)
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from actors import Agent, LLMAgent, Rule, RuleBasedAgent, Tool
from actors.llm import (
    ChaosLLM,
    LLMMessage,
    LLMServerError,
    OpenAICompatibleLLM,
    ScriptedLLM,
    ToolSchema,
)
from strategies import Backoff, BreakerPolicy, OneForOne
from supervisor import ChildSpec, Supervisor

# -- the data ---------------------------------------------------------------------------------


class Ticket(BaseModel):
    id: int
    customer: str
    text: str = Field(min_length=1)


class Decision(BaseModel):
    """The seed's valid actions: respond, route_to_human, close_ticket."""

    action: Literal["respond", "route_to_human", "close_ticket"]
    reply: str = ""


ORDERS = {1001: "shipped", 1002: "delivered", 1003: "processing", 1004: "lost in transit"}


class TrackArgs(BaseModel):
    order_id: int


class RefundArgs(BaseModel):
    order_id: int
    amount: float = Field(gt=0)


class ManageArgs(BaseModel):
    action: Literal["close", "delete", "escalate"]
    target: str | None = None


class TransferArgs(BaseModel):
    department: Literal["billing", "shipping"]


def track_order(args: TrackArgs) -> dict[str, Any]:
    """Where an order is."""
    return {"order_id": args.order_id, "status": ORDERS.get(args.order_id, "unknown order")}


def refund(args: RefundArgs) -> dict[str, Any]:
    """Refund part or all of an order."""
    return {"order_id": args.order_id, "refunded": args.amount}


def manage_ticket(args: ManageArgs) -> dict[str, Any]:
    """Close, delete or escalate a ticket."""
    return {"ticket": args.target, "done": args.action}


TRACK = Tool("track_order", track_order, TrackArgs)
REFUND = Tool(
    "refund",
    refund,
    RefundArgs,
    dangerous=lambda a: a.amount > 100,
    target_fields=("order_id",),
    on_dangerous="deny",
)
MANAGE = Tool(
    "manage_ticket",
    manage_ticket,
    ManageArgs,
    dangerous=lambda a: a.action == "delete",
    on_dangerous="confirm",
    confirm=lambda name, a: str(a.target).startswith("spam-"),
)

# -- the agents -------------------------------------------------------------------------------


class HumanHandoff(RuleBasedAgent):
    """Deterministic fallback: hand the ticket to a human, with a priority from keywords."""

    rules = (
        Rule(
            keywords=("charged twice", "fraud", "lost"),
            reply={"action": "route_to_human", "reason": "Agent unavailable", "priority": "high"},
        ),
    )
    default = {"action": "route_to_human", "reason": "Agent unavailable", "priority": "normal"}


class Specialist(LLMAgent):
    input_model = Ticket
    output_model = Decision
    max_steps = 6
    llm_timeout = 20.0


class Billing(Specialist):
    system_prompt = (
        "You are the billing desk. Use track_order and refund (refunds over 100 are not "
        "allowed: route those to a human). Then answer."
    )
    tools = (TRACK, REFUND)


class Shipping(Specialist):
    system_prompt = (
        "You are the shipping desk. Use track_order to answer where an order is; "
        "manage_ticket closes, escalates or deletes tickets. Then answer."
    )
    tools = (TRACK, MANAGE)


class Router(LLMAgent):
    """Reads a ticket and transfers it; the transfer tool asks the specialist."""

    input_model = Ticket
    output_model = Decision
    system_prompt = (
        "You are the front desk. Call transfer with department billing (refunds, invoices, "
        "charges) or shipping (deliveries, orders, tickets), then answer with the "
        "specialist's decision."
    )
    max_steps = 4
    llm_timeout = 20.0

    def build_tools(self) -> Sequence[Tool]:
        return (Tool("transfer", self.transfer, TransferArgs),)

    def handle(self, message: Any) -> Any:
        self._ticket = message
        return super().handle(message)

    def transfer(self, args: TransferArgs) -> dict[str, Any]:
        """Hand the ticket to a specialist and return its decision."""
        ticket = self._ticket.model_dump() if isinstance(self._ticket, BaseModel) else self._ticket
        result = self.context.ask(f"desk/specialists/{args.department}", ticket)
        self.context.tell("desk/audit", {"ticket": ticket["id"], "by": result.handled_by})
        return {
            "decision": result.data if result.ok else None,
            "answered_by": result.handled_by,
            "status": result.status.value,
            "error": result.error,
        }


class Audit(Agent):
    """Records tickets in an "audit database" that drops the connection now and then."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def handle(self, message: Any) -> Any:
        if message["ticket"] % 9 == 0:
            raise ConnectionError("audit database connection reset")
        self.records.append(message)
        return len(self.records)


# -- the scripted "model" ---------------------------------------------------------------------


def _ticket_of(messages: Sequence[LLMMessage]) -> dict[str, Any]:
    for m in messages:
        if m.role == "user" and m.content and m.content.startswith("{"):
            try:
                data: dict[str, Any] = json.loads(m.content)
            except json.JSONDecodeError:
                continue
            return data
    return {"id": 0, "text": ""}


def brain(messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]) -> Any:
    """A deterministic stand-in for a model: picks a tool from the ticket's words, then
    answers from the tool's result. Good enough to exercise every path of the desk."""
    names = {t.name for t in tools}
    ticket = _ticket_of(messages)
    text = str(ticket.get("text", "")).lower()
    order = int(m.group(1)) if (m := re.search(r"#(\d+)", text)) else 1001
    last = messages[-1]
    if last.role == "tool":
        result = json.loads(last.content or "{}")
        return json.dumps(_answer(names, result))
    tried = {c.name for m in messages for c in m.tool_calls}
    if "transfer" in names:
        department = "billing" if re.search(r"refund|charge|invoice|bill", text) else "shipping"
        return {"tool_calls": [{"name": "transfer", "arguments": {"department": department}}]}
    if "refund" in names and "refund" in text and "refund" not in tried:
        amount = 250.0 if "everything" in text else 40.0
        return {
            "tool_calls": [{"name": "refund", "arguments": {"order_id": order, "amount": amount}}]
        }
    if "manage_ticket" in names and "delete" in text and "manage_ticket" not in tried:
        # the seed's production bug: a delete without a target; the guard refuses it
        return {
            "tool_calls": [
                {"name": "manage_ticket", "arguments": {"action": "delete", "target": None}}
            ]
        }
    if "track_order" not in tried:
        return {"tool_calls": [{"name": "track_order", "arguments": {"order_id": order}}]}
    return json.dumps({"action": "route_to_human", "reply": "let me get a colleague"})


def _answer(names: set[str], result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        return {"action": "route_to_human", "reply": "I could not do that myself"}
    if "decision" in result:  # the router relays its specialist
        decision = result.get("decision")
        if isinstance(decision, dict) and "action" in decision:
            return {"action": decision["action"], "reply": str(decision.get("reply", ""))}
        return {"action": "route_to_human", "reply": "the specialist is unavailable"}
    if "refunded" in result:
        return {"action": "close_ticket", "reply": f"refunded {result['refunded']:.2f}"}
    if "done" in result:
        return {"action": "close_ticket", "reply": f"ticket {result['done']}"}
    return {"action": "respond", "reply": f"order {result.get('order_id')}: {result.get('status')}"}


# -- the tree ---------------------------------------------------------------------------------

CHAOS_RATES = {
    "slow": 0.02,
    "hang": 0.005,
    "invalid_json": 0.02,
    "hallucinated_tool": 0.02,
    "invalid_parameters": 0.02,
    "endless_loop": 0.005,
    "exception": 0.02,
}


def offline_llm(
    role: str,
    seed: int = 7,
    rates: dict[str, float] | None = None,
    outage: threading.Event | None = None,
) -> ChaosLLM:
    """ChaosLLM(ScriptedLLM(brain)) with a per-role seed (reproducible). While `outage` is
    set, the scripted provider answers 503 (a provider outage, as in the seed's log)."""

    def provider(messages: Sequence[LLMMessage], tools: Sequence[ToolSchema]) -> Any:
        if outage is not None and outage.is_set():
            return LLMServerError("503 Service Unavailable (provider outage)")
        return brain(messages, tools)

    return ChaosLLM(
        ScriptedLLM(provider),
        rates=CHAOS_RATES if rates is None else rates,
        seed=seed * 1000 + zlib.crc32(role.encode()) % 1000,
        slow_seconds=0.2,
        hang_seconds=60.0,
    )


def online_llm(role: str, **options: Any) -> OpenAICompatibleLLM:
    """A real OpenAI-compatible endpoint (OPENAI_BASE_URL, OPENAI_API_KEY, OPENAI_MODEL)."""
    return OpenAICompatibleLLM(**options)


def desk_tree(
    llm_for: Callable[[str], Any] = offline_llm,
    *,
    message_timeout: float = 1.5,
    breaker_reset: float = 1.0,
) -> Supervisor:
    def llm_agent(name: str, cls: type[LLMAgent], timeout: float, fail_max: int = 3) -> ChildSpec:
        return ChildSpec(
            name,
            cls,
            kwargs={"llm": llm_for(name)},
            message_timeout=timeout,
            breaker=BreakerPolicy(fail_max=fail_max, reset_timeout=breaker_reset),
            fallback=HumanHandoff,
        )

    return Supervisor(
        "desk",
        strategy=OneForOne(max_restarts=20, within_seconds=10.0),
        children=[
            llm_agent("router", Router, message_timeout * 2, fail_max=5),
            Supervisor(
                "specialists",
                strategy=OneForOne(
                    max_restarts=10,
                    within_seconds=10.0,
                    backoff=Backoff(min_backoff=0.05, max_backoff=1.0, random_factor=0.2),
                ),
                children=[
                    llm_agent("billing", Billing, message_timeout),
                    llm_agent("shipping", Shipping, message_timeout),
                ],
            ),
            ChildSpec("audit", Audit),
        ],
    )


class FrontDoor(Agent):
    """Generates traffic for `hivekeeper run`: sends itself "tick", and on each tick asks the
    router about the next ticket, pausing `pause` seconds between tickets."""

    TEXTS = (
        "Where is my order #{o}?",
        "Please refund order #{o}",
        "Refund everything on #{o}!",
        "Please delete my ticket about #{o}",
        "Invoice for #{o} is wrong",
    )

    def __init__(self, pause: float = 0.05) -> None:
        self.pause = pause
        self.sent = 0
        self._idle = threading.Event()

    def on_start(self) -> None:
        self.context.tell(self.context.path, "tick")

    def handle(self, message: Any) -> Any:
        self.sent += 1
        text = self.TEXTS[self.sent % len(self.TEXTS)].format(o=1001 + self.sent % 4)
        ticket = {"id": self.sent, "customer": "walk-in", "text": text}
        result = self.context.ask(
            "desk/router", ticket, timeout=10.0, trace_id=f"ticket-{self.sent}"
        )
        self._idle.wait(self.pause)
        self.context.tell(self.context.path, "tick")
        return result.status.value


tree = desk_tree()
"""The offline desk, for `hivekeeper run hivekeeper_examples.support_desk:tree`."""

busy_tree = Supervisor(
    "desk",
    strategy=tree.strategy,
    children=[*tree.children, ChildSpec("frontdoor", FrontDoor, message_timeout=None)],
)
"""The same desk with a front door that keeps tickets coming (`hivekeeper run ...:busy_tree`)."""
