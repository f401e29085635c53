"""Tree declarations the CLI tests load by MODULE:ATTR."""

from __future__ import annotations

from typing import Any

from actors import Agent
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, System
from tests.agents import Echo, Human

small = Supervisor(
    "small",
    strategy=OneForOne(max_restarts=5),
    children=[
        ChildSpec("echo", Echo, fallback=Human),
        Supervisor("team", children=[ChildSpec("a", Echo), ChildSpec("b", Echo)]),
    ],
)


def make_small() -> Supervisor:
    return small


not_a_tree = {"id": "nope"}


def broken() -> Supervisor:
    return Supervisor("broken", children=[ChildSpec("x", Echo), ChildSpec("x", Echo)])


# -- agents whose `state` is not an AgentState (health must neither show nor trip on it) -------

SECRET = "sk-test-0123456789abcdefghij"


class SecretState(Agent):
    """Keeps a secret in an attribute named `state`."""

    def __init__(self) -> None:
        self.state = {"api_key": SECRET, "note": "user data"}

    def handle(self, message: Any) -> Any:
        return message


class RaisingState(Agent):
    """An agent whose `state` property raises."""

    @property
    def state(self) -> Any:
        raise RuntimeError("state is not readable")

    def handle(self, message: Any) -> Any:
        return message


class SurrogateCrash(Agent):
    """Crashes with its message in the error: "\\ud800" is valid JSON, so it can arrive."""

    def handle(self, message: Any) -> Any:
        raise RuntimeError(f"bad input {message}")


class MarkupCrash(Agent):
    """Crashes with rich markup in its error text."""

    def handle(self, message: Any) -> Any:
        raise RuntimeError("items[/0] is [bold]not[/bold] a list [/]")


odd_states = Supervisor(
    "odd",
    children=[
        ChildSpec("secret", SecretState),
        ChildSpec("raising", RaisingState),
        ChildSpec("surrogate", SurrogateCrash),
    ],
)


# -- hooks for `hivekeeper run --on-start` ---------------------------------------------------------

seen: list[Any] = []


def remember(system: System) -> None:
    """Records the running System and what one ask through it answered."""
    seen.append((system, system.state, system.ask("small/echo", "from the hook", timeout=5.0)))


def failing_hook(system: System) -> None:
    seen.append((system, system.state, None))
    raise RuntimeError("hook broke")


not_callable = 42
