"""LLM agents used by the tests: a ticket desk with a dangerous tool."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from actors import LLMAgent, Tool


class Ticket(BaseModel):
    id: int
    text: str = Field(min_length=1)


class Decision(BaseModel):
    action: Literal["respond", "route_to_human", "close_ticket"]
    reply: str = ""


class ManageArgs(BaseModel):
    action: Literal["close", "delete", "reply"]
    target: str | None = None
    note: str = ""


class LookupArgs(BaseModel):
    order_id: int


class ToolLog:
    def __init__(self) -> None:
        self.calls: list[tuple[str, BaseModel]] = []


def make_tools(
    log: ToolLog, *, on_dangerous: str = "allow", confirm: Any = None
) -> tuple[Tool, ...]:
    def manage(args: ManageArgs) -> dict[str, Any]:
        log.calls.append(("manage_ticket", args))
        return {"ok": True, "action": args.action}

    def lookup(args: LookupArgs) -> dict[str, Any]:
        log.calls.append(("lookup_order", args))
        if args.order_id == 13:
            raise RuntimeError("order service down")
        return {"order_id": args.order_id, "status": "shipped"}

    return (
        Tool(
            "manage_ticket",
            manage,
            ManageArgs,
            description="Change a ticket",
            dangerous=lambda a: a.action == "delete",
            on_dangerous=on_dangerous,  # type: ignore[arg-type]
            confirm=confirm,
        ),
        Tool("lookup_order", lookup, LookupArgs, description="Look up an order"),
    )


def desk_class(log: ToolLog, **limits: Any) -> type[LLMAgent]:
    tools = make_tools(
        log, on_dangerous=limits.pop("on_dangerous", "allow"), confirm=limits.pop("confirm", None)
    )
    attrs: dict[str, Any] = {
        "input_model": Ticket,
        "output_model": Decision,
        "tools": tools,
        "system_prompt": "You are a support desk.",
        "use_async": limits.pop("use_async", False),
        **limits,
    }
    return type("Desk", (LLMAgent,), attrs)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


ANSWER = '{"action": "respond", "reply": "on its way"}'
