"""health() and /metrics built fast for big trees, and still right: the health entries are built
without validation (so they are checked against validated models here), and render_metrics
writes the Prometheus text itself (so it is checked against prometheus_client's own output)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from actors import Agent
from strategies import BreakerPolicy, OneForOne
from supervisor import ChildSpec, Supervisor, System, start
from supervisor.inspect._exposition import (
    COUNTER,
    GAUGE,
    Family,
    Histograms,
    LabelledValues,
    PathValues,
    StateSets,
    render,
)
from supervisor.inspect._health import ActorHealth, BreakerHealth, TreeHealth, clean_text
from supervisor.inspect._health_reading import trusted
from supervisor.inspect._metric_families import tree_families
from supervisor.inspect._metrics import metrics_registry, render_metrics
from supervisor.testing import wait_until
from tests.agents import Blocking, Crashy, Echo, Flaky, Gate, Human, Switch
from tests.cli_trees import SurrogateCrash

pytestmark = pytest.mark.timeout(60)


class Counted(Agent):
    """Counts the messages it handles, so a test can see that nothing asked it."""

    handled = 0

    def handle(self, message: Any) -> Any:
        type(self).handled += 1
        return message


def every_state_tree(gate: Gate) -> Supervisor:
    """One tree with every kind of entry: restarts, a crash, an open breaker answered by a
    fallback, a lone surrogate in an error, a dead letter, a bounded mailbox, a busy agent,
    a nested supervisor, histograms of several statuses."""
    return Supervisor(
        "root",
        strategy=OneForOne(max_restarts=10, within_seconds=60.0),
        children=[
            ChildSpec("echo", Echo, mailbox_size=50),
            ChildSpec("crashy", Crashy),
            ChildSpec(
                "flaky",
                Flaky,
                args=(Switch(failing=True),),
                breaker=BreakerPolicy(fail_max=2, reset_timeout=600.0),
                fallback=Human,
            ),
            ChildSpec("surrogate", SurrogateCrash),
            ChildSpec("busy", Blocking, args=(gate,)),
            Supervisor("team", children=[ChildSpec("a", Echo), ChildSpec("b", Counted)]),
        ],
    )


@pytest.fixture
def busy_tree() -> Iterator[System]:
    gate = Gate()
    system = start(every_state_tree(gate))
    try:
        for i in range(5):
            system.ask("root/echo", i, timeout=5.0)
        system.ask("root/crashy", "boom", timeout=5.0)
        wait_until(lambda: system.health().actors["root/crashy"].restarts == 1)
        system.tell("root/crashy", "boom")  # a tell nobody handles: a dead letter
        wait_until(lambda: sum(system.health().dead_letters.values()) == 1)
        wait_until(lambda: system.health().actors["root/crashy"].restarts == 2)
        for _ in range(3):  # two failures open the breaker; the third goes to the fallback
            system.ask("root/flaky", "refund", timeout=5.0)
        system.ask("root/surrogate", json.loads('"\\ud800"'), timeout=5.0)
        wait_until(lambda: system.health().actors["root/surrogate"].restarts == 1)
        system.tell("root/busy", "block")
        gate.wait_entered()
        wait_until(lambda: system.health().actors["root/crashy"].state == "running")
        yield system
    finally:
        gate.release()
        system.shutdown()


# -- health: unvalidated entries, still what validation makes --------------------------------


def test_every_health_entry_is_what_validating_it_would_make(busy_tree: System) -> None:
    health = busy_tree.health()
    kinds = {a.kind for a in health.actors.values()}
    assert kinds == {"agent", "fallback", "supervisor"}
    assert health.actors["root/flaky"].breaker is not None
    assert health.actors["root/busy"].busy
    for entry in health.actors.values():
        again = ActorHealth.model_validate(entry.model_dump())
        assert again == entry, entry.path
        assert again.model_dump_json() == entry.model_dump_json()
        for name in ActorHealth.model_fields:  # of the field's own type, not a subclass
            assert type(getattr(again, name)) is type(getattr(entry, name)), (entry.path, name)
    assert TreeHealth.model_validate(health.model_dump()) == health
    assert health.state == "degraded"  # the breaker is open: a fallback answers for flaky


def test_an_entry_copies_and_compares_like_any_model(busy_tree: System) -> None:
    """Entries share one fields-set: copying one with changes leaves the others alone."""
    health = busy_tree.health()
    echo, team = health.actors["root/echo"], health.actors["root/team/a"]
    changed = echo.model_copy(update={"restarts": 99})
    assert changed.restarts == 99
    assert echo.restarts != 99
    assert team.model_fields_set == set(ActorHealth.model_fields)
    assert changed != echo
    assert ActorHealth.model_validate(changed.model_dump()) == changed
    with pytest.raises(ValidationError):
        echo.restarts = 3  # frozen


def test_a_lone_surrogate_in_an_error_still_serialises(busy_tree: System) -> None:
    health = busy_tree.health()
    error = health.actors["root/surrogate"].last_error
    assert error is not None
    assert error.startswith("RuntimeError: bad input \\ud800")  # escaped, not dropped
    error.encode("utf-8")
    json.loads(health.model_dump_json())
    json.dumps(health.tree())
    render_metrics(busy_tree).decode("utf-8")


def test_clean_text_escapes_only_what_utf8_cannot_carry() -> None:
    assert clean_text("root/a1") == "root/a1"
    assert clean_text("héllo ✓ 🙂") == "héllo ✓ 🙂"
    assert clean_text("bad \ud800 here") == "bad \\ud800 here"


def test_a_trusted_model_must_be_given_every_field() -> None:
    with pytest.raises(TypeError, match="needs the fields"):
        trusted(
            BreakerHealth,
            {"state": "closed", "failures": 0, "fail_max": 1, "failures_total": 0},
        )


def test_health_and_metrics_never_ask_an_agent(busy_tree: System) -> None:
    """root/busy is blocked inside a handler, and Counted counts every handle: neither
    changes while a snapshot or a scrape is taken."""
    before = Counted.handled
    processed = {p: a.processed for p, a in busy_tree.health().actors.items()}
    for _ in range(3):
        busy_tree.health()
        render_metrics(busy_tree)
    assert Counted.handled == before
    after = busy_tree.health()
    assert {p: a.processed for p, a in after.actors.items()} == processed
    assert after.actors["root/busy"].busy


def test_a_snapshot_reuses_the_entries_of_the_agents_that_did_not_change(
    busy_tree: System,
) -> None:
    first = busy_tree.health()
    busy_tree.ask("root/echo", "again", timeout=5.0)
    second = busy_tree.health()
    assert second.actors["root/team/a"] is first.actors["root/team/a"]
    assert second.actors["root/echo"] is not first.actors["root/echo"]
    assert second.actors["root/echo"].processed == first.actors["root/echo"].processed + 1
    assert second.actors["root/echo"].last_heartbeat != first.actors["root/echo"].last_heartbeat


# -- metrics: the text written here is what prometheus_client writes ----------------------------


def families_of(text: str) -> dict[str, tuple[str, str, list[Any]]]:
    return {
        f.name: (f.type, f.documentation, sorted(f.samples, key=repr))
        for f in text_string_to_metric_families(text)
    }


def test_render_metrics_writes_what_the_collector_gives(busy_tree: System) -> None:
    ours = render_metrics(busy_tree).decode()
    theirs = generate_latest(metrics_registry(busy_tree)).decode()
    assert families_of(ours) == families_of(theirs)
    assert ours == theirs  # even byte for byte
    names = set(families_of(ours))
    for family in (
        "hivekeeper_breaker_state",
        "hivekeeper_handling_seconds",
        "hivekeeper_dead_letters",
        "hivekeeper_failures",
        "hivekeeper_supervisor_budget_used",
        "hivekeeper_mailbox_limit",
    ):
        assert family in names


def test_a_scrape_after_a_change_shows_it(busy_tree: System) -> None:
    """Families that did not change are reused from the previous scrape; the others not."""
    render_metrics(busy_tree)
    busy_tree.ask("root/team/a", "new", timeout=5.0)
    ours = render_metrics(busy_tree).decode()
    assert ours == generate_latest(metrics_registry(busy_tree)).decode()
    line = 'hivekeeper_messages_processed_total{path="root/team/a"} 1.0'
    assert line in ours.splitlines()


def test_the_scrape_shows_every_kind_of_state(busy_tree: System) -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(render_metrics(busy_tree).decode())
        for s in f.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("hivekeeper_breaker_state", path="root/flaky", state="open") == 1.0
    assert value("hivekeeper_dead_letters_total", path="root", reason="failure") == 1.0
    assert value("hivekeeper_agent_dead_letters_total", path="root/crashy") == 1.0
    assert value("hivekeeper_restarts_total", path="root/crashy") == 2.0
    assert value("hivekeeper_busy", path="root/busy") == 1.0
    assert value("hivekeeper_actor_state", path="root/team", state="running") == 1.0
    assert value("hivekeeper_failures_total", path="root/surrogate", kind="crash") == 1.0
    assert value("hivekeeper_handling_seconds_count", path="root/echo", status="success") == 5.0
    assert value("hivekeeper_isolation", path="root/team/a", isolation="thread") == 1.0


HOSTILE = 'a\\b "quoted"\nnext line'


def hostile_families() -> list[Family]:
    """Every family kind, with label values that need escaping."""
    buckets = [("0.1", 1.0), ("1.0", 3.0), ("+Inf", 4.0)]
    return [
        PathValues(GAUGE, "x_depth", "Queued.\nSecond \\ line.", [HOSTILE, "p"], [0, 12345678.0]),
        LabelledValues(
            COUNTER, "x_failures_total", "Failures.", ("path", "kind"), [((HOSTILE, "k"), 2)]
        ),
        LabelledValues(
            GAUGE, "x_ray", "Three labels.", ("path", "node", "actor"), [(("p", "n", HOSTILE), 1)]
        ),
        StateSets("x_state", "State.", [(HOSTILE, ("a", "b"), "b"), ("p", ("a", "b"), "zzz")]),
        Histograms("x_seconds", "Time.", ("path", "status"), [((HOSTILE, "ok"), buckets, 0.5)]),
        LabelledValues(GAUGE, "x_empty", "No samples, still declared.", ("path",), []),
        PathValues(GAUGE, "x_absent", "Optional, no samples: left out.", [], [], optional=True),
    ]


def test_escaping_and_every_family_kind_match_prometheus_client() -> None:
    families = hostile_families()
    ours = render(families).decode()

    class Collector:
        def collect(self) -> list[Any]:
            return [f.to_metric() for f in families if len(f) or not f.optional]

    assert ours == generate_latest(Collector()).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(ours)}
    assert {s.labels["path"] for s in parsed["x_depth"].samples} == {HOSTILE, "p"}
    assert parsed["x_depth"].documentation == "Queued.\nSecond \\ line."
    assert "x_absent" not in parsed
    assert parsed["x_empty"].samples == []
    states = {(s.labels["path"], s.labels["state"]): s.value for s in parsed["x_state"].samples}
    assert states == {
        (HOSTILE, "a"): 0.0,
        (HOSTILE, "b"): 1.0,
        ("p", "a"): 0.0,
        ("p", "b"): 0.0,
        ("p", "zzz"): 1.0,
    }


def test_a_bigger_tree_scrapes_the_same_both_ways() -> None:
    n = 300
    tree = Supervisor(
        "big",
        strategy=OneForOne(),
        children=[
            Supervisor(f"s{j}", children=[ChildSpec(f"a{i}", Echo) for i in range(n // 3)])
            for j in range(3)
        ],
    )
    with start(tree, start_timeout=60.0) as system:
        system.ask("big/s1/a7", "hello", timeout=5.0)
        health = system.health()
        assert len(health.actors) == n + 5  # + root, 3 supervisors, the fallback guardian
        assert health.actors["big/s1/a7"].processed == 1
        ours = render_metrics(system)
        assert ours == generate_latest(metrics_registry(system))
        by_name = {f.name: f for f in tree_families(system)}
        assert len(by_name["hivekeeper_mailbox_depth"]) == n
        assert len(by_name["hivekeeper_restarts_total"]) == n + 5
