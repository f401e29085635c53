"""Tree declarations the CLI tests load by MODULE:ATTR."""

from __future__ import annotations

from strategies import OneForOne
from supervisor import ChildSpec, Supervisor
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
