"""Tools and the guard that validates every tool call before it is executed.

The model proposes; the guard decides. A call is executed only when all hold:
1. the tool is on this agent's allow-list (a hallucinated name is refused);
2. its arguments are a JSON object (real JSON: no NaN, Infinity or -Infinity, no overflowing
   number such as 1e400, not absurdly nested) that validates against the tool's pydantic
   model, and no validated argument is a non-finite number (pydantic would coerce "NaN");
3. if the call is dangerous (e.g. action == "delete"), every target field is non-empty, and
   the tool's policy for dangerous calls allows it (allow / confirm with a hook / deny).
A refused call is never executed: the refusal goes back to the model as a tool error it can
correct, and is emitted as an event, as is every executed call.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .llm._jsonsafe import NotJSONError, TooDeepError, problem, strict_loads
from .llm._types import ToolCall, ToolSchema

__all__ = ["Approved", "Refused", "Tool", "ToolGuard", "Verdict"]

DangerPolicy = Literal["allow", "confirm", "deny"]


def _empty(value: object) -> bool:
    """None, blank strings (whitespace only) and empty collections are not targets."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return not value
    return False


def _non_finite(args: BaseModel) -> str | None:
    """A non-finite number among the validated arguments (e.g. a float field given "NaN")."""
    return problem(args.model_dump(), text=False, max_depth=1_000_000)


class Tool:
    """A tool an agent may call.

    name / description: what the model is told. args_model: pydantic model of the arguments.
    func: called with a validated args_model instance (sync or async).
    dangerous: True, or a predicate on the validated arguments (e.g. lambda a: a.action ==
      "delete"); dangerous calls need every field in target_fields non-empty, and then obey
      on_dangerous: "allow", "confirm" (the confirm hook must return True), or "deny". A
      predicate that raises refuses the call (kind "denied"): undecidable is not safe.
    """

    def __init__(
        self,
        name: str,
        func: Callable[[Any], Any],
        args_model: type[BaseModel],
        *,
        description: str = "",
        dangerous: bool | Callable[[Any], bool] = False,
        target_fields: Sequence[str] = ("target",),
        on_dangerous: DangerPolicy = "confirm",
        confirm: Callable[[str, BaseModel], bool] | None = None,
    ) -> None:
        self.name = name
        self.func = func
        self.args_model = args_model
        self.description = description or (inspect.getdoc(func) or "")
        self.dangerous = dangerous
        self.target_fields = tuple(target_fields)
        self.on_dangerous = on_dangerous
        self.confirm = confirm
        self.is_async = inspect.iscoroutinefunction(func)

    def schema(self) -> ToolSchema:
        return ToolSchema(
            name=self.name,
            description=self.description,
            parameters=self.args_model.model_json_schema(),
        )

    def is_dangerous(self, args: BaseModel) -> bool:
        return self.dangerous(args) if callable(self.dangerous) else bool(self.dangerous)


@dataclass(frozen=True, slots=True)
class Approved:
    call: ToolCall
    tool: Tool
    args: BaseModel


@dataclass(frozen=True, slots=True)
class Refused:
    """kind: unknown_tool | bad_arguments | missing_target | denied | unconfirmed."""

    call: ToolCall
    kind: str
    reason: str


Verdict = Approved | Refused


class ToolGuard:
    def __init__(self, tools: Sequence[Tool]) -> None:
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            msg = f"duplicate tool names: {names}"
            raise ValueError(msg)
        self.tools = {t.name: t for t in tools}
        self.schemas = [t.schema() for t in tools]

    def check(self, call: ToolCall) -> Verdict:
        tool = self.tools.get(call.name)
        if tool is None:
            allowed = ", ".join(sorted(self.tools)) or "none"
            return Refused(
                call, "unknown_tool", f"unknown tool {call.name!r}; allowed tools: {allowed}"
            )
        raw = call.arguments
        if isinstance(raw, str):
            try:
                raw = strict_loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as exc:
                return Refused(call, "bad_arguments", f"arguments are not valid JSON: {exc.msg}")
            except TooDeepError:
                return Refused(call, "bad_arguments", "arguments are nested too deeply")
            except NotJSONError as exc:
                return Refused(call, "bad_arguments", f"arguments are not valid JSON: {exc}")
        if not isinstance(raw, dict):
            return Refused(call, "bad_arguments", "arguments must be a JSON object")
        unsound = problem(raw, text=False)
        if unsound is not None:
            return Refused(call, "bad_arguments", f"arguments are not valid JSON: {unsound}")
        try:
            args = tool.args_model.model_validate(raw)
        except RecursionError:
            return Refused(call, "bad_arguments", "arguments are nested too deeply")
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()
            )
            return Refused(call, "bad_arguments", f"invalid arguments for {tool.name}: {details}")
        unsound = _non_finite(args)
        if unsound is not None:
            return Refused(call, "bad_arguments", f"invalid arguments for {tool.name}: {unsound}")
        try:
            dangerous = tool.is_dangerous(args)
        except Exception as exc:  # noqa: BLE001 - fail closed: undecidable means refused
            reason = f"{tool.name}: could not tell whether the call is dangerous ({exc!r:.200})"
            return Refused(call, "denied", reason)
        if dangerous:
            missing = [f for f in tool.target_fields if _empty(getattr(args, f, None))]
            if missing:
                return Refused(
                    call,
                    "missing_target",
                    f"{tool.name} is a dangerous action and needs a non-empty {', '.join(missing)}",
                )
            if tool.on_dangerous == "deny":
                return Refused(
                    call, "denied", f"{tool.name} with these arguments is denied by policy"
                )
            if tool.on_dangerous == "confirm" and not (
                tool.confirm is not None and tool.confirm(tool.name, args)
            ):
                return Refused(
                    call, "unconfirmed", f"{tool.name} needs confirmation, which was not given"
                )
        return Approved(call, tool, args)
