"""Restart strategies, by the OTP definitions, and the pure decision a supervisor takes when a
child exits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ._backoff import Backoff
from ._restart_types import ExitKind, RestartType, should_restart

__all__ = [
    "ChildInfo",
    "ExitPlan",
    "OneForAll",
    "OneForOne",
    "RestForOne",
    "RestartStrategy",
    "plan_exit",
]


class RestartStrategy(BaseModel):
    """Which siblings restart with a failed child, and the restart budget.

    More than max_restarts restarts within within_seconds: the supervisor stops its children
    and escalates to its parent. backoff (optional) delays restarts; without it a child is
    restarted at once, as in OTP.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: ClassVar[str] = "abstract"
    # affected() is the failed child alone whatever its siblings are: an exit can be planned
    # from that child's info only (one step, not one per sibling, in a tree of 100,000)
    independent: ClassVar[bool] = False

    max_restarts: int = Field(default=3, ge=0)
    within_seconds: float = Field(default=5.0, gt=0.0, allow_inf_nan=False)
    backoff: Backoff | None = None

    def affected(self, children: Sequence[str], failed: str) -> list[str]:
        """The children that restart when `failed` does, in declaration order."""
        raise NotImplementedError


class OneForOne(RestartStrategy):
    """Only the failed child is restarted."""

    name: ClassVar[str] = "one_for_one"
    independent: ClassVar[bool] = True

    def affected(self, children: Sequence[str], failed: str) -> list[str]:
        return [failed]


class OneForAll(RestartStrategy):
    """All children are stopped (reverse order) and restarted (declaration order)."""

    name: ClassVar[str] = "one_for_all"

    def affected(self, children: Sequence[str], failed: str) -> list[str]:
        return list(children)


class RestForOne(RestartStrategy):
    """The failed child and every child declared after it are restarted."""

    name: ClassVar[str] = "rest_for_one"

    def affected(self, children: Sequence[str], failed: str) -> list[str]:
        return list(children[children.index(failed) :])


@dataclass(frozen=True, slots=True)
class ChildInfo:
    id: str
    restart: RestartType


@dataclass(frozen=True, slots=True)
class ExitPlan:
    """What a supervisor does after a child exits.

    stop: running siblings to stop first, in reverse declaration order.
    restart: children to start afterwards, in declaration order (the exited child included).
    remove: children deleted from the supervisor (temporary ones; they are never restarted).
    escalate: the budget is exhausted; stop every child and report to the parent.
    counted: this exit consumes one restart of the budget (record it in the window).
    """

    stop: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    escalate: bool = False
    counted: bool = False


def plan_exit(
    strategy: RestartStrategy,
    children: Sequence[ChildInfo],
    exited: str,
    exit_kind: ExitKind,
    recent_restarts: int,
) -> ExitPlan:
    """Decide, without side effects, what follows the exit of child `exited`, given how many
    restarts the supervisor's window already holds (RestartWindow.prune(now))."""
    by_id = {c.id: c for c in children}
    info = by_id[exited]
    if not should_restart(info.restart, exit_kind):
        gone: tuple[str, ...] = (exited,) if info.restart == "temporary" else ()
        return ExitPlan(remove=gone)
    ids = [c.id for c in children]
    if recent_restarts + 1 > strategy.max_restarts:
        others = tuple(reversed([i for i in ids if i != exited]))
        return ExitPlan(stop=others, escalate=True, counted=True)
    group = strategy.affected(ids, exited)
    siblings = [i for i in group if i != exited]
    remove: tuple[str, ...] = tuple(i for i in siblings if by_id[i].restart == "temporary")
    restart = tuple(i for i in group if i not in remove)
    return ExitPlan(stop=tuple(reversed(siblings)), restart=restart, remove=remove, counted=True)
