"""A supervisor's work per message does not grow with its number of children: the tally the
reconcile loop asks (pure, tested here without threads) and a guard that counts Python calls
(not time) while trees of different sizes start and stop."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from typing import Any

from actors import Agent
from strategies import OneForOne
from supervisor import ChildSpec, Supervisor, start
from supervisor.supervision._child_record import ChildRecord
from supervisor.supervision._child_tally import ChildTally
from supervisor.supervision._states import Phase, Want


class Echo(Agent):
    def handle(self, message: Any) -> Any:
        return message


class _Node:
    """Stands for a slot: a record only needs something to point at."""


def _records(tally: ChildTally, n: int) -> list[ChildRecord]:
    out = []
    for _ in range(n):
        rec = ChildRecord(_Node())  # type: ignore[arg-type]
        tally.enrol(rec)
        rec.tally = tally
        out.append(rec)
    return out


def test_the_tally_follows_every_change_of_a_record() -> None:
    tally = ChildTally()
    a, b, c = _records(tally, 3)
    assert tally.down_run == 3
    assert list(tally.down_to_run()) == [a, b, c]  # declaration order
    b.phase = Phase.STARTING
    assert (tally.down_run, tally.restarting) == (2, 1)
    b.phase = Phase.RUNNING
    assert tally.restarting == 0
    assert tally.last_up() is b
    c.phase = Phase.RUNNING
    assert tally.last_up() is c
    c.restart_pending = True
    assert tally.to_stop == 1
    c.phase = Phase.STOPPING
    assert (tally.stopping, tally.to_stop) == (1, 0)
    c.phase = Phase.DOWN
    c.want = Want.REMOVE
    assert (tally.stopping, tally.remove_down, tally.down_run) == (0, 1, 1)
    assert tally.last_up() is b
    d = _records(tally, 1)[0]
    d.first_start = True
    assert tally.new_down == 1


def test_stopping_early_keeps_what_was_not_started() -> None:
    tally = ChildTally()
    a, b, c = _records(tally, 3)
    for rec in tally.down_to_run():
        rec.phase = Phase.STARTING  # the first one is started, then the caller stops
        break
    assert list(tally.down_to_run()) == [b, c]
    assert list(tally.down_to_run()) == [b, c]  # iterating does not consume
    a.phase = Phase.DOWN  # down again: back in order
    assert list(tally.down_to_run()) == [a, b, c]


def test_a_withdrawn_record_is_not_kept_alive_and_the_heaps_stay_small() -> None:
    tally = ChildTally()
    keep = _records(tally, 2)
    for rec in keep:
        rec.phase = Phase.RUNNING
    refs = []
    for _ in range(1000):  # a child per conversation, started and removed
        rec = _records(tally, 1)[0]
        rec.phase = Phase.RUNNING
        rec.phase = Phase.DOWN
        rec.tally = None
        tally.withdraw(rec)
        refs.append(weakref.ref(rec))
        del rec
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(tally._up) <= 2 * 2 + 64 + 1
    assert len(tally._down) <= 2 * 2 + 64 + 1
    assert tally.last_up() is keep[1]


def _calls_to_start_and_stop(n: int) -> int:
    calls = [0]

    def count(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            calls[0] += 1  # races between threads lose a few: a guard, not an exact count

    tree = Supervisor(
        "root",
        strategy=OneForOne(),
        children=[ChildSpec(f"a{i}", Echo, message_timeout=None) for i in range(n)],
    )
    threading.setprofile(count)
    sys.setprofile(count)
    try:
        with start(tree, start_timeout=120.0) as system:
            assert system.ask(f"root/a{n - 1}", "hi", timeout=30.0).data == "hi"
    finally:
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    return calls[0]


def test_starting_and_stopping_a_tree_costs_calls_in_proportion_to_its_size() -> None:
    """Linear work gives a ratio of about 4 for 4x the children; a scan of every child per
    supervisor message gave about 16 (26 s to start 10,000 agents)."""
    small, large = _calls_to_start_and_stop(100), _calls_to_start_and_stop(400)
    assert large / small < 6.0, (small, large)
