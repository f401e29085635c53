"""Tree declarations are validated before anything starts, with clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from actors import Agent
from strategies import BreakerPolicy, OneForAll
from supervisor import ChildSpec, Supervisor
from supervisor._spec import iter_specs
from tests.agents import Echo, Human


def test_nested_trees_and_paths():
    tree = Supervisor(
        "root",
        children=[
            ChildSpec("a", Echo),
            Supervisor("team", strategy=OneForAll(), children=[ChildSpec("b", Echo)]),
        ],
    )
    assert [p for p, _ in iter_specs(tree)] == ["root", "root/a", "root/team", "root/team/b"]


def test_duplicate_sibling_ids_are_rejected():
    with pytest.raises(ValidationError, match=r"duplicate child ids \['a'\]"):
        Supervisor("root", children=[ChildSpec("a", Echo), ChildSpec("a", Echo)])


def test_the_same_id_under_different_supervisors_is_fine():
    Supervisor(
        "root",
        children=[
            Supervisor("x", children=[ChildSpec("a", Echo)]),
            Supervisor("y", children=[ChildSpec("a", Echo)]),
        ],
    )


@pytest.mark.parametrize("bad", ["a/b", "has#hash", "", "with space", "/lead"])
def test_ids_that_would_break_paths_are_rejected(bad):
    with pytest.raises(ValidationError, match="invalid id"):
        ChildSpec(bad, Echo)
    with pytest.raises(ValidationError, match="invalid id"):
        Supervisor(bad)


@pytest.mark.parametrize("strategy", ["one_for_one", None, 3, OneForAll])
def test_bad_strategy_values_are_rejected(strategy):
    with pytest.raises(ValidationError, match="strategy must be"):
        Supervisor("root", strategy=strategy)


def test_factories_must_build_agents():
    with pytest.raises(ValidationError, match=r"not an actors\.Agent subclass"):
        ChildSpec("x", dict)
    with pytest.raises(ValidationError):
        ChildSpec("x", "Echo")  # type: ignore[arg-type]
    ChildSpec("x", lambda: Echo())  # noqa: PLW0108 - a callable returning an Agent is fine


@pytest.mark.parametrize(
    "field",
    [
        {"restart": "sometimes"},
        {"shutdown_timeout": 0},
        {"message_timeout": -1},
        {"retries": -1},
        {"mailbox_size": 0},
        {"overflow": "drop_newest"},
        {"colour": "blue"},
        {"breaker": {"fail_max": 0}},
    ],
)
def test_bad_child_options_are_rejected(field):
    with pytest.raises(ValidationError):
        ChildSpec("x", Echo, **field)


def test_children_must_be_specs():
    with pytest.raises(ValidationError, match="children must be ChildSpec or Supervisor"):
        Supervisor("root", children=[Echo])


def test_fallbacks_are_normalised_to_child_specs():
    spec = ChildSpec("p", Echo, fallback=Human)
    assert [f.id for f in spec.fallback] == ["Human"]
    chain = ChildSpec("p", Echo, fallback=[ChildSpec("second", Echo), Human])
    assert [f.id for f in chain.fallback] == ["second", "Human"]


def test_bad_fallbacks_are_rejected():
    with pytest.raises(ValidationError, match="duplicate fallback ids"):
        ChildSpec("p", Echo, fallback=[Human, Human])
    with pytest.raises(ValidationError, match="has its own fallback"):
        ChildSpec("p", Echo, fallback=[ChildSpec("f", Echo, fallback=Human)])
    with pytest.raises(ValidationError, match="must be Agent subclasses or ChildSpecs"):
        ChildSpec("p", Echo, fallback="human")


def test_specs_are_frozen_data():
    spec = ChildSpec("p", Echo, breaker=BreakerPolicy())
    with pytest.raises(ValidationError):
        spec.retries = 3  # type: ignore[misc]

    class Custom(Agent):
        def handle(self, message: object) -> object:
            return message

    assert ChildSpec("c", Custom, args=(1,), kwargs={"k": 2}).kwargs == {"k": 2}
